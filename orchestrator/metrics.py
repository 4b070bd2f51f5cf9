"""The Orchestrator's domain metrics, in one small object the executor and the model agent share."""

from dataclasses import dataclass

from prometheus_client import Gauge, Histogram

from common import metrics, state

# Seconds: from a few tens of milliseconds (a local model's first token) to minutes (a long answer).
MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(frozen=True)
class OrchestratorMetrics:
    """The Orchestrator's own metrics (request counts and latencies are common.metrics')."""

    runs: object  # counter: runs entering each status
    running: object  # gauge: runs executing now (summed over workers)
    queued: object  # gauge: runs waiting for a worker (every worker sees the same count)
    model_calls: object  # counter: model calls by outcome
    model_first_token_seconds: object
    model_seconds: object
    model_tokens: object  # counter: tokens by direction (input, output)

    def count_run(self, status):
        """Count a run entering `status`."""
        self.runs.labels(status=status).inc()


def create(app):
    """Register the Orchestrator's metrics with `app`."""
    registry = state.metrics_registry(app)
    return OrchestratorMetrics(
        runs=metrics.counter(app, "oneshot_runs_total", "Runs entering each status.", ["status"]),
        running=metrics.gauge(app, "oneshot_runs_running", "Runs executing now."),
        queued=Gauge(
            "oneshot_runs_queued", "Runs waiting for a worker.", registry=registry, multiprocess_mode="livemax"
        ),
        model_calls=metrics.counter(app, "oneshot_model_calls_total", "Model calls by outcome.", ["outcome"]),
        model_first_token_seconds=Histogram(
            "oneshot_model_first_token_seconds",
            "From a model call to its first token.",
            registry=registry,
            buckets=MODEL_BUCKETS,
        ),
        model_seconds=Histogram(
            "oneshot_model_call_seconds", "Whole model calls.", registry=registry, buckets=MODEL_BUCKETS
        ),
        model_tokens=metrics.counter(app, "oneshot_model_tokens_total", "Model tokens spent.", ["direction"]),
    )


def current() -> OrchestratorMetrics:
    """The current app's Orchestrator metrics."""
    return state.of().metrics
