#!/usr/bin/env python3
"""Upload one file to a tus 1.0 endpoint with tuspy, the way a Python integration would.

    python tus_upload.py --endpoint URL --key KEY --file PATH --chunk-size N [--name NAME]
                         [--checksum]

On success prints one JSON line {"url": "<upload url>"} and exits 0; on failure prints the
error to stderr and exits 1 (2 for usage errors). As soon as the upload exists it prints
`upload url: <url>` to stderr, so a test can watch the upload's progress on the server.
Used by Ferry's end-to-end tests.
"""

import argparse
import json
import os
import sys


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description="Upload one file with tuspy.")
    parser.add_argument("--endpoint", required=True, help="tus creation URL, e.g. http://host/files")
    parser.add_argument("--key", required=True, help="API key sent as 'Authorization: Bearer KEY'")
    parser.add_argument("--file", required=True, help="path of the file to upload")
    parser.add_argument("--chunk-size", required=True, type=positive_int, help="bytes per PATCH")
    parser.add_argument("--name", help="filename metadata (default: the file's base name)")
    parser.add_argument(
        "--checksum",
        action="store_true",
        help="send a tus Upload-Checksum (sha1) with every PATCH",
    )
    args = parser.parse_args()

    if not os.path.isfile(args.file):
        print(f"tus_upload.py: cannot read {args.file}: not a file", file=sys.stderr)
        return 1

    # Imported late so that --help and argument errors work without the venv.
    from tusclient import client
    from tusclient.exceptions import TusCommunicationError, TusUploadFailed

    tus = client.TusClient(args.endpoint, headers={"Authorization": f"Bearer {args.key}"})
    try:
        uploader = tus.uploader(
            file_path=args.file,
            chunk_size=args.chunk_size,
            metadata={
                "filename": args.name or os.path.basename(args.file),
                "filetype": "application/octet-stream",
            },
            # Retries cover a server restart in the middle of an upload: tuspy asks the server
            # for its offset (HEAD) and resumes from there.
            retries=8,
            retry_delay=1,
            upload_checksum=args.checksum,
        )
        # Create the upload first (tuspy would do it inside upload()) to announce its URL.
        uploader.set_url(uploader.create_url())
        uploader.offset = 0
        print(f"upload url: {uploader.url}", file=sys.stderr, flush=True)
        uploader.upload()
    except (TusCommunicationError, TusUploadFailed) as err:
        body = getattr(err, "response_content", None)
        status = getattr(err, "status_code", None)
        print(
            f"tus_upload.py: upload failed: {err!r} (HTTP {status}: {body!r})",
            file=sys.stderr,
        )
        return 1
    except Exception as err:  # noqa: BLE001 - report anything else as a failure, not a trace
        print(f"tus_upload.py: upload failed: {err!r}", file=sys.stderr)
        return 1

    print(json.dumps({"url": uploader.url}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
