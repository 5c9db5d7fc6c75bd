"""Names shared by the service: metrics (prefix matting_, base units) and HTTP headers."""

from __future__ import annotations

METRIC_REQUESTS = "matting_requests"  # counter, exposed as matting_requests_total
METRIC_REQUEST_SECONDS = "matting_request_duration_seconds"
METRIC_QUEUE_WAIT_SECONDS = "matting_queue_wait_seconds"
METRIC_INFERENCE_SECONDS = "matting_inference_duration_seconds"
METRIC_BATCH_SIZE = "matting_batch_size"
METRIC_QUEUE_DEPTH = "matting_queue_depth"
METRIC_IN_FLIGHT = "matting_inflight_requests"
METRIC_MODEL = "matting_model"  # info, exposed as matting_model_info
METRIC_GPU_MEMORY = "matting_gpu_memory_bytes"
METRIC_READY = "matting_ready"

HEADER_SERVER_TIMING = "Server-Timing"
HEADER_BATCH_SIZE = "X-Matting-Batch-Size"
HEADER_PATCHES = "X-Matting-Refined-Patches"
HEADER_SIZE = "X-Matting-Size"  # WIDTHxHEIGHT of the result

# Video jobs
METRIC_JOBS_SUBMITTED = "matting_jobs_submitted"  # counter: new jobs (not idempotent repeats)
METRIC_JOBS_FINISHED = "matting_jobs_finished"  # counter by outcome, counted by workers
METRIC_JOBS_QUEUE = "matting_jobs_queue"  # gauge by kind: waiting, pending, dead_letter
METRIC_JOB_SECONDS = "matting_job_duration_seconds"  # one worker's run of a job
METRIC_JOB_FRAMES = "matting_job_frames"  # counter: frames matted (rate = frames per second)
METRIC_JOB_FPS = "matting_job_frames_per_second"  # gauge: the last chunk's speed
METRIC_JOB_PATCHES = "matting_job_refined_cells"  # counter: refined and total patch cells
