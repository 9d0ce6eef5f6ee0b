"""The Client class: one channel, bearer-token metadata, typed helpers over the stubs."""
import os

import grpc

try:
    from slq.v1 import common_pb2, inference_service_pb2 as inf_pb2, inference_service_pb2_grpc as inf_grpc
    from slq.v1 import job_service_pb2 as job_pb2, job_service_pb2_grpc as job_grpc
except ImportError as e:  # pragma: no cover - a setup error, said plainly
    raise ImportError("slq_client needs the generated stubs on sys.path: run python/gen_stubs.sh OUT_DIR and add "
                      "OUT_DIR to PYTHONPATH (" + str(e) + ")") from e


class SlqError(Exception):
    """An RPC failed: .code is the grpc.StatusCode, the message is the server's."""

    def __init__(self, err):
        self.code = err.code() if hasattr(err, "code") else None
        super().__init__(f"{self.code.name if self.code else 'error'}: "
                         f"{err.details() if hasattr(err, 'details') else err}")


class JobFailed(Exception):
    """wait_job: the job ended FAILED or CANCELLED (.job has its message)."""

    def __init__(self, job):
        self.job = job
        super().__init__(f"job {job.id} ended {job_pb2.JobState.Name(job.state)}: {job.message}")


_TERMINAL = {job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED}


class Client:
    """A connection to slq-server. `token` or `token_file` sets `authorization: Bearer ...`;
    `root_certificates` (PEM bytes or a path) turns on TLS."""

    def __init__(self, address="127.0.0.1:7070", token=None, token_file=None, root_certificates=None):
        if token is None and token_file:
            with open(token_file) as f:
                token = f.read().strip()
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        if root_certificates:
            if isinstance(root_certificates, str) and os.path.exists(root_certificates):
                with open(root_certificates, "rb") as f:
                    root_certificates = f.read()
            self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates))
        else:
            self._channel = grpc.insecure_channel(address)
        self.jobs = job_grpc.JobServiceStub(self._channel)
        self.inference = inf_grpc.InferenceServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, fn, request, timeout=60):
        try:
            return fn(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as e:
            raise SlqError(e) from None

    def _stream(self, fn, request, timeout=None):
        try:
            yield from fn(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as e:
            raise SlqError(e) from None

    # ---- JobService ---------------------------------------------------------------------
    def submit_job(self, model_uri, *, min_ear=None, max_kl=None, max_avg_bits=None, formats="4-5-6-7-8",
                   calibration_data="", eval_data="", group_size=0, idempotency_key="", **spec_fields):
        """Submits a quantization job; exactly one target (min_ear, max_kl, max_avg_bits). Returns the Job."""
        targets = {k: v for k, v in (("min_ear", min_ear), ("max_kl", max_kl), ("max_avg_bits", max_avg_bits))
                   if v is not None}
        if len(targets) != 1:
            raise ValueError("give exactly one target: min_ear, max_kl or max_avg_bits")
        spec = job_pb2.JobSpec(model_uri=model_uri, target=common_pb2.FidelityTarget(**targets), formats=formats,
                               calibration_data=calibration_data, eval_data=eval_data, group_size=group_size,
                               **spec_fields)
        resp = self._call(self.jobs.SubmitJob, job_pb2.SubmitJobRequest(spec=spec, idempotency_key=idempotency_key))
        return resp.job

    def get_job(self, job_id):
        return self._call(self.jobs.GetJob, job_pb2.GetJobRequest(job_id=job_id)).job

    def watch_job(self, job_id, after_sequence=0):
        """Yields WatchJobResponse events until the job ends (resumable with after_sequence)."""
        yield from self._stream(self.jobs.WatchJob, job_pb2.WatchJobRequest(job_id=job_id, after_sequence=after_sequence))

    def wait_job(self, job_id, on_event=None):
        """Watches until the job ends; returns the finished Job, raises JobFailed otherwise."""
        last = 0
        while True:
            for e in self.watch_job(job_id, after_sequence=last):
                last = e.sequence
                if on_event:
                    on_event(e)
            job = self.get_job(job_id)
            if job.state in _TERMINAL:
                if job.state != job_pb2.JOB_STATE_SUCCEEDED:
                    raise JobFailed(job)
                return job

    def get_artifact(self, artifact_id):
        """Returns (Artifact, Certificate)."""
        resp = self._call(self.jobs.GetArtifact, job_pb2.GetArtifactRequest(artifact_id=artifact_id))
        return resp.artifact, resp.certificate

    def list_artifacts(self):
        return list(self._call(self.jobs.ListArtifacts, job_pb2.ListArtifactsRequest()).artifacts)

    # ---- InferenceService ---------------------------------------------------------------
    def load_model(self, name="", *, artifact_id=None, artifact_path=None, model_uri=None, shadow_base_model=""):
        """Loads an artifact (by id or path) or a base model; returns its ModelInfo."""
        sources = {k: v for k, v in (("artifact_id", artifact_id), ("artifact_path", artifact_path),
                                     ("model_uri", model_uri)) if v}
        if len(sources) != 1:
            raise ValueError("give exactly one of artifact_id, artifact_path, model_uri")
        req = inf_pb2.LoadModelRequest(name=name, shadow_base_model=shadow_base_model, **sources)
        return self._call(self.inference.LoadModel, req, timeout=600).model

    def list_models(self):
        return list(self._call(self.inference.ListModels, inf_pb2.ListModelsRequest()).models)

    def unload_model(self, name):
        self._call(self.inference.UnloadModel, inf_pb2.UnloadModelRequest(name=name))

    def generate(self, model, prompt, *, max_tokens=64, temperature=0.0, top_p=0.0, top_k=0, seed=0, stop=(),
                 logprobs=False, timeout=None):
        """Streams GenerateResponse messages (text deltas; the last has finish_reason and usage)."""
        req = inf_pb2.GenerateRequest(model=model, prompt=prompt, max_tokens=max_tokens, stop=list(stop),
                                      logprobs=logprobs,
                                      sampling=inf_pb2.SamplingParams(temperature=temperature, top_p=top_p,
                                                                      top_k=top_k, seed=seed))
        yield from self._stream(self.inference.Generate, req, timeout=timeout)

    def generate_text(self, model, prompt, **kwargs):
        """Streams only the text deltas."""
        for r in self.generate(model, prompt, **kwargs):
            if r.text:
                yield r.text
