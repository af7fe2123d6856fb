"""The server's `/metrics` page (Prometheus text format, via `prometheus_client`).

Counters of requests (by endpoint and HTTP status), prompt and completion
tokens, requests rejected because the queue was full, rows cancelled (their
client left) and timed out (past `--request_timeout`); histograms of request
latency, time to first token and rows per compiled call; gauges of the
tokens per second over the last 10 seconds, the rows waiting and the rows
decoding, latency percentiles (p50/p95/p99) over the last 1,000 requests,
and continuous batching's work by kind (`keras_lm_decoding_events`).
Each server has its own registry, so two servers in one process (tests) do
not mix their counts.

Example:
>>> metrics = Metrics()
>>> metrics.finished_request(latency=0.2, first_token=0.05, prompt_tokens=4, completion_tokens=8)
>>> b"keras_lm_completion_tokens_total 8.0" in metrics.page()
True
"""

import collections
import threading
import time

import numpy as np
import prometheus_client

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
QUANTILES = (0.5, 0.95, 0.99)
DECODING_EVENTS = ("loop_calls", "joins", "read_in_loop", "prefill_calls", "insert_calls",
                   "resizes")  # `SlotBatch.counts`


class Metrics:
    def __init__(self, queued=lambda: 0, window_seconds=10.0, recent_requests=1000,
                 active=lambda: 0, decoding_counts=dict):
        self.registry = prometheus_client.CollectorRegistry()
        options = dict(registry=self.registry, namespace="keras_lm")
        self.requests = prometheus_client.Counter(
            "requests", "HTTP requests answered, by endpoint and status.", ["endpoint", "status"],
            **options)
        self.prompt_tokens = prometheus_client.Counter(
            "prompt_tokens", "Prompt tokens of finished completions (with <bos>).", **options)
        self.completion_tokens = prometheus_client.Counter(
            "completion_tokens", "Tokens generated for finished completions.", **options)
        self.cancelled_rows = prometheus_client.Counter(
            "cancelled_rows", "Rows stopped because their client went away.", **options)
        self.timed_out_rows = prometheus_client.Counter(
            "timed_out_rows", "Rows stopped because their request passed its deadline.",
            **options)
        self.rejected = prometheus_client.Counter(
            "rejected_requests", "Requests refused with 503 because the queue was full.",
            **options)
        self.latency = prometheus_client.Histogram(
            "request_latency_seconds", "Completion request latency, arrival to last token.",
            buckets=LATENCY_BUCKETS, **options)
        self.first_token = prometheus_client.Histogram(
            "time_to_first_token_seconds", "Arrival to the first text of a completion.",
            buckets=LATENCY_BUCKETS, **options)
        self.batch_rows = prometheus_client.Histogram(
            "batch_rows", "Rows decoded together in one compiled batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64), **options)
        prometheus_client.Gauge(
            "queued_rows", "Rows waiting for a batch.", **options).set_function(queued)
        prometheus_client.Gauge(
            "active_rows", "Rows being decoded now.", **options).set_function(active)
        prometheus_client.Gauge(
            "tokens_per_second", f"Tokens generated per second over the last {window_seconds:g} s.",
            **options).set_function(self.tokens_per_second)
        percentiles = prometheus_client.Gauge(
            "request_latency_recent_seconds",
            f"Latency percentiles of the last {recent_requests} completion requests.",
            ["quantile"], **options)
        for q in QUANTILES:
            percentiles.labels(str(q)).set_function(lambda q=q: self.latency_percentile(q))
        events = prometheus_client.Gauge(
            "decoding_events", "Continuous batching's work since start-up, by kind: compiled "
            "loop calls, rows joined, prompts read in the loop, prefill and insert calls, moves "
            "between batch-size buckets.", ["kind"], **options)
        for kind in DECODING_EVENTS:
            events.labels(kind).set_function(lambda kind=kind: decoding_counts().get(kind, 0))
        self.window_seconds = window_seconds
        self._recent = collections.deque(maxlen=recent_requests)
        self._tokens = collections.deque()  # (time, tokens) of recent batches
        self._lock = threading.Lock()

    def finished_request(self, *, latency, first_token, prompt_tokens, completion_tokens):
        self.latency.observe(latency)
        if first_token is not None:
            self.first_token.observe(first_token)
        self.prompt_tokens.inc(prompt_tokens)
        self.completion_tokens.inc(completion_tokens)
        with self._lock:
            self._recent.append(latency)

    def row_ended(self, reason):
        """A row ended early: `"cancelled"` (its client left) or `"timeout"`."""
        (self.cancelled_rows if reason == "cancelled" else self.timed_out_rows).inc()

    def finished_batch(self, rows, seconds, new_tokens):
        """From the decoding thread, after each batch (static) or compiled call (continuous)."""
        self.batch_rows.observe(rows)
        with self._lock:
            self._tokens.append((time.monotonic(), new_tokens))

    def tokens_per_second(self):
        now = time.monotonic()
        with self._lock:
            while self._tokens and self._tokens[0][0] < now - self.window_seconds:
                self._tokens.popleft()
            return sum(tokens for _, tokens in self._tokens) / self.window_seconds

    def latency_percentile(self, q):
        with self._lock:
            recent = list(self._recent)
        return float(np.quantile(recent, q)) if recent else float("nan")

    def page(self):
        return prometheus_client.generate_latest(self.registry)
