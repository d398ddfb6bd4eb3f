"""Cross-view person association and 3D tracking: real calibration and real motion (Pose2Sim's
reconstruction of the sample, projected through the sample's rig), with a bystander, views
locked onto the wrong person, shuffled detection order, and on the sample's real 2D."""

import numpy as np
import pytest
from test_process_support import reference_take, sample_result, sample_rig, views_of

from app.process.association import PersonTracker
from app.process.cues import cue_points
from app.process.identity import merged_tracks, relink
from app.process.pipeline import FrameResult
from app.process.take import ProcessConfig, choose_people
from engines.skeleton import BLAZEPOSE33, flip_left_right

BYSTANDER_OFFSET = np.array([-1.25, 0.0, 0.0])  # beside the platform: in view of cam01 and cam02 only
# 2 m behind the performer and 1 m to the side as cam02 sees them, as the sample's real bystander.
# (Someone straight behind the performer along a camera's line of sight projects onto the
# performer's rays; no geometry can tell them apart in that one view.)
OTHER_OFFSET = np.array([-1.65, -1.38, 0.0])


def _people():
    performer = reference_take()
    bystander = np.repeat(performer[:1] + BYSTANDER_OFFSET, len(performer), axis=0)  # standing still
    return performer, bystander


def _run(rig, frames, fps=60.0):
    tracker = PersonTracker(rig, BLAZEPOSE33)
    out = [FrameResult(f, f / fps, views, tracker.update(views, f / fps), {}) for f, views in enumerate(frames)]
    return tracker, out


def _members_by_person(result: FrameResult, person: int) -> dict[int, np.ndarray]:
    """Track ID -> (C,) bool: which views' detections of `person` the track holds."""
    out = {}
    for k, tid in enumerate(result.association.track_ids):
        out[int(tid)] = np.array([i >= 0 and result.views[v].track_ids[i] == person
                                  for v, i in enumerate(result.association.members[k])])
    return out


def test_cues_ignore_left_right_labels():
    X = reference_take()[:5]
    kp = sample_rig().project(X)[0]
    conf = np.where(np.isfinite(kp).all(-1), 0.9, 0.0)
    a, wa = cue_points(kp, conf, BLAZEPOSE33, 0.3)
    b, wb = cue_points(flip_left_right(kp, BLAZEPOSE33), flip_left_right(conf[..., None], BLAZEPOSE33)[..., 0],
                       BLAZEPOSE33, 0.3)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(wa, wb)
    assert np.isfinite(a).all()


def test_a_view_locked_onto_a_bystander_is_not_used_for_the_performer():
    """cam02's detector follows the bystander, cam01 sees both people, cam03/cam04 only the
    performer: the performer is reconstructed from cam01, cam03, cam04 only, the bystander
    from cam01 and cam02, and the main performer is the performer."""
    rig = sample_rig()
    performer, bystander = _people()
    frames = views_of(rig, [performer, bystander], hidden={0: [1], 1: [2, 3]}, noise_px=2.0)
    tracker, results = _run(rig, frames)
    tracks = tracker.all_tracks()
    assert len(tracks) == 2
    ids = {}
    for r in results:
        assert len(r.association.track_ids) == 2
        for tid, hold in _members_by_person(r, 0).items():
            if hold.any():
                ids.setdefault(0, tid)
                assert tid == ids[0]
                np.testing.assert_array_equal(hold, [True, False, True, True])
        for tid, hold in _members_by_person(r, 1).items():
            if hold.any():
                ids.setdefault(1, tid)
                assert tid == ids[1]
                np.testing.assert_array_equal(hold, [True, True, False, False])
    # and no track mixes people
    for r in results:
        for k in range(len(r.association.track_ids)):
            owners = {int(r.views[v].track_ids[i]) for v, i in enumerate(r.association.members[k]) if i >= 0}
            assert len(owners) == 1
    mapping = relink(results, 1.0, 0.5)
    people = merged_tracks(tracks, mapping)
    assert choose_people(people, len(results), ProcessConfig(people="1")) == [mapping[ids[0]]]
    assert sorted(choose_people(people, len(results), ProcessConfig(people="all"))) == sorted(mapping.values())


def test_two_people_seen_by_different_views_stay_apart():
    """Detectors lock onto different people in different views: A in cam01/cam02, B in
    cam03/cam04. Each is reconstructed from their own two views; nothing is mixed."""
    rig = sample_rig()
    a, b = _people()
    frames = views_of(rig, [a, b], hidden={0: [2, 3], 1: [0, 1]}, noise_px=2.0)
    _, results = _run(rig, frames)
    for r in results:
        assert len(r.association.track_ids) == 2
        holders = {p: [h for h in _members_by_person(r, p).values() if h.any()] for p in (0, 1)}
        assert [h.tolist() for h in holders[0]] == [[True, True, False, False]]
        assert [h.tolist() for h in holders[1]] == [[False, False, True, True]]
        for k in range(2):
            owners = {int(r.views[v].track_ids[i]) for v, i in enumerate(r.association.members[k]) if i >= 0}
            assert len(owners) == 1


def test_ids_survive_a_short_loss_and_are_relinked_after_a_long_one():
    rig = sample_rig()
    performer, _ = _people()
    frames = views_of(rig, [performer], noise_px=2.0)
    from engines.tracker import ViewPeople

    for f in range(20, 30):  # 10 frames unseen: the track waits
        frames[f] = [ViewPeople.empty() for _ in range(4)]
    for f in range(50, 90):  # 40 frames (0.67 s) unseen: the track ends, a new one starts
        frames[f] = [ViewPeople.empty() for _ in range(4)]
    tracker, results = _run(rig, frames)
    assert len(tracker.all_tracks()) == 2
    seen = [r.association.track_ids.tolist() for r in results]
    assert all(s == [seen[0][0]] for s in seen[:20] + seen[30:50])
    assert seen[90] != seen[0]
    mapping = relink(results, 1.0, 0.5)
    assert set(mapping.values()) == {0}
    assert relink(results, 0.5, 0.5) == {seen[0][0]: 0, seen[90][0]: 1}  # gap longer than allowed


def test_shuffled_detections_keep_their_identity():
    """Two people seen by all views, listed in a random order per view and frame."""
    rig = sample_rig()
    a = reference_take()
    b = a[::-1] + np.array([1.0, 0.0, 0.0])  # a second performer, visible in every view
    frames = views_of(rig, [a, b], noise_px=3.0, seed=7)
    _, results = _run(rig, frames)
    owner = {}
    for r in results:
        assert len(r.association.track_ids) == 2
        for k, tid in enumerate(r.association.track_ids.tolist()):
            members = r.association.members[k]
            assert (members >= 0).all()
            people = {int(r.views[v].track_ids[i]) for v, i in enumerate(members)}
            assert len(people) == 1
            owner.setdefault(tid, people.pop())
            assert owner[tid] == {int(r.views[v].track_ids[i]) for v, i in enumerate(members)}.pop()


@pytest.mark.slow
def test_real_2d_with_another_persons_keypoints_in_one_view():
    """The sample's real BlazePose 2D, but cam02 is fed another person (Pose2Sim's performer
    motion moved behind and beside, projected into cam02): cam02 is never used for the main
    person, the three other views always are."""
    from engines.tracker import ViewPeople

    result = sample_result()
    rig = result.take.rig
    other = rig.cameras[1].project(reference_take() + OTHER_OFFSET)  # (F, J, 2)
    frames = []
    for f, fr in enumerate(result.frames):
        views = list(fr.views)
        conf = np.where(np.isfinite(other[f]).all(-1), 0.9, 0.0)
        views[1] = ViewPeople(other[f][None], conf[None], np.array([99]), np.ones(1))
        frames.append(views)
    tracker, results = _run(rig, frames, result.take.fps)
    main = max(tracker.all_tracks().values(), key=lambda t: t.view_frames)
    cam02_used = 0
    for r in results:
        k = r.association.person(main.track_id)
        assert k is not None
        members = r.association.members[k]
        assert members[1] == -1
        assert (members[[0, 2, 3]] >= 0).all()
        cam02_used += members[1] >= 0
    assert cam02_used == 0


def test_live_tracker_keeps_a_bounded_number_of_finished_tracks():
    """People coming and going for hours must not grow a live run's memory."""
    from app.process.association import AssociationConfig
    from engines.tracker import ViewPeople

    rig = sample_rig()
    performer, _ = _people()
    frames = views_of(rig, [performer], noise_px=2.0)
    for start in range(10, 100, 20):  # seen 10 frames, gone 10 (> max_missing_s): a new track each time
        for f in range(start, min(start + 10, len(frames))):
            frames[f] = [ViewPeople.empty() for _ in range(4)]
    config = AssociationConfig(max_missing_s=0.1, keep_finished=2)
    tracker = PersonTracker(rig, BLAZEPOSE33, config)
    for f, views in enumerate(frames):
        tracker.update(views, f / 60.0)
    assert tracker._next_id == 5  # five appearances, five tracks
    assert len(tracker.finished) == 2 and max(tracker.finished) == max(tracker.all_tracks())


@pytest.fixture(scope="module")
def crowd():
    """A synthetic crowd (training.crowd): 4 people crossing in front of 4 cameras with
    occlusion, stolen limbs, mixed and dropped detections and false people; one of them leaves
    for 1-2 s and come back elsewhere. Real motion: the test copy's CMU walk and jog."""
    from shared_data import TEST_DATA

    from engines.heads.algebraic import WEIGHTS
    from training.crowd import CrowdConfig, crowd_take
    from training.error_model import ErrorModel
    from training.mocap import load_clips

    walks = list(load_clips(TEST_DATA / "mocap-cmu", ("002", "003"), step=2).values())
    model = ErrorModel.load(WEIGHTS.with_name("error_model.toml"))
    config = CrowdConfig(people=(4, 4), cameras=(4, 4), seconds=6.0, leave=0.3, absent_s=(1.0, 2.0))
    return crowd_take(np.random.default_rng(1), walks, model, config)


def _crowd_result(crowd, **options):
    from app.process.take import process_views
    from benchmarks.multi_person import as_take

    return process_views(as_take(crowd), crowd.views, BLAZEPOSE33, ProcessConfig(people="all", **options))


def test_a_crossing_crowd_keeps_one_id_per_person_and_scores_like_the_benchmarks(crowd):
    from training.metrics import multi_person_pcp

    left = [n for n in range(len(crowd.truth)) if not np.isfinite(crowd.truth[n]).all(-1).any(-1).all()]
    assert len(left) >= 1  # someone leaves and comes back in this take
    result = _crowd_result(crowd)
    pred = np.stack([p.final.joints for p in result.people])
    score = multi_person_pcp(pred, crowd.truth, BLAZEPOSE33)
    ids = [{int(result.people[q].person_id) for q in score.matched[g][score.matched[g] >= 0]}
           for g in range(len(crowd.truth))]
    assert all(len(i) == 1 for i in ids), ids  # one ID each, across crossings and the return
    assert len(set.union(*ids)) == len(crowd.truth)
    assert score.average >= 95.0, score.per_person
    # Without recognising returning people by body size, each return is a new ID.
    again = _crowd_result(crowd, reid_gap_s=0.0)
    pred = np.stack([p.final.joints for p in again.people])
    s2 = multi_person_pcp(pred, crowd.truth, BLAZEPOSE33)
    assert sum(len({int(q) for q in s2.matched[g][s2.matched[g] >= 0]}) for g in left) > len(left)
