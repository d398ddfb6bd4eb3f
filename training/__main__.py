"""`python -m training TARGET --dataset KIND:PATH -o RUN` (and under torchrun): see training/supervised.py."""

from training.supervised import main

raise SystemExit(main())
