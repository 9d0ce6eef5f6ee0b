#!/usr/bin/env python3
"""Submit a quantization job, watch it, load the artifact and stream a generation.

    python/gen_stubs.sh build/python/gen
    PYTHONPATH=build/python/gen:python python3 python/examples/quantize_and_generate.py \
        --server 127.0.0.1:7070 --token-file /tmp/slq/token \
        --model file://$PWD/../shared/models/tinystories-656k --target-ear 0.98 --formats 4-5-6-7-8
"""
import argparse
import sys

from slq_client import Client, JobFailed, SlqError
from slq.v1 import inference_service_pb2 as inf_pb2, job_service_pb2 as job_pb2


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default="127.0.0.1:7070")
    p.add_argument("--token-file")
    p.add_argument("--model", required=True, help="model URI: file:///abs/dir, hf://org/name, https://...")
    p.add_argument("--target-ear", type=float, default=0.99)
    p.add_argument("--formats", default="4-5-6-7-8")
    p.add_argument("--calibration", default="", help="bundled text name or file:// URI (default: the server's)")
    p.add_argument("--prompt", default="Once upon a time")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--name", default="slq-example")
    args = p.parse_args()

    with Client(args.server, token_file=args.token_file) as c:
        job = c.submit_job(args.model, min_ear=args.target_ear, formats=args.formats,
                           calibration_data=args.calibration)
        print(f"job {job.id} submitted")

        def show(e):
            print(f"  [{job_pb2.JobStage.Name(e.stage)}] {e.progress * 100:5.1f}% {e.message}")

        try:
            job = c.wait_job(job.id, on_event=show)
        except JobFailed as e:
            print(e, file=sys.stderr)
            return 6
        artifact, cert = c.get_artifact(job.artifact_id)
        print(f"artifact {artifact.id}: {artifact.avg_bits:.3f} bits/param, target met: {cert.target_met}")
        info = c.load_model(args.name, artifact_id=artifact.id)
        print(f"loaded {info.name} ({info.device}); generating:")
        sys.stdout.write(args.prompt)
        for r in c.generate(info.name, args.prompt, max_tokens=args.max_tokens, temperature=0.8, seed=1):
            sys.stdout.write(r.text)
            sys.stdout.flush()
            if r.finish_reason:
                print(f"\n[{r.usage.generated_tokens} tokens, finish {inf_pb2.FinishReason.Name(r.finish_reason)}]")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SlqError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
