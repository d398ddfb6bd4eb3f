"""`python -m training TARGET --dataset KIND:PATH -o RUN` (and under torchrun): see training/supervised.py."""

from training.cli import main

raise SystemExit(main())
