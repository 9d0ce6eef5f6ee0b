"""slq_client: a small Python wrapper over slq's gRPC API (JobService, InferenceService).

The stubs are generated from proto/slq/v1 (python/gen_stubs.sh; not committed) and must be on
sys.path, e.g. PYTHONPATH=build/python/gen:python. Runtime: Debian's python3-grpcio and
python3-protobuf.

    from slq_client import Client
    c = Client("127.0.0.1:7070", token_file="/etc/slq/token")
    job = c.submit_job("file:///models/stories260k/stories260K.bin", min_ear=0.9, formats="4-8")
    job = c.wait_job(job.id, on_event=print)
    c.load_model("stories-slq", artifact_id=job.artifact_id)
    for delta in c.generate_text("stories-slq", "Once upon a time", max_tokens=32):
        print(delta, end="")
"""
from slq_client.client import Client, JobFailed, SlqError

__all__ = ["Client", "JobFailed", "SlqError"]
