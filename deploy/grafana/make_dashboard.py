#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/slq.json, the slq Grafana dashboard.

Edit the panels here and run `python3 deploy/grafana/make_dashboard.py`; tests/deploy/run.sh
checks that the committed JSON is what this script writes and that every expression uses only
metrics of docs/METRICS.md. Store-wide gauges (slq_jobs, queue, leases, workers) are
aggregated with max: replicas sharing one store report the same values.
"""
import json
import os
import sys

DATASOURCE = {"type": "prometheus", "uid": "slq-prometheus"}  # provisioning/datasources
MODEL = '{model=~"$model"}'
RATE = "[$__rate_interval]"
PANEL_H = 8
GRID_W = 24


class Layout:
    """Places panels left to right in rows of GRID_W columns; numbers them."""

    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0

    def _next_id(self):
        return len(self.panels) + 1

    def row(self, title):
        self.newline()
        self.panels.append({"id": self._next_id(), "type": "row", "title": title,
                            "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": GRID_W, "x": 0, "y": self.y}})
        self.y += 1

    def newline(self):
        if self.x > 0:
            self.x = 0
            self.y += PANEL_H

    def panel(self, title, targets, unit="short", width=8, description="", field_config=None):
        """targets: [(PromQL, legend)]; field_config replaces the default fieldConfig."""
        if self.x + width > GRID_W:
            self.newline()
        self.panels.append({
            "id": self._next_id(), "type": "timeseries", "title": title,
            "description": description, "datasource": DATASOURCE,
            "gridPos": {"h": PANEL_H, "w": width, "x": self.x, "y": self.y},
            "fieldConfig": field_config or {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "none"}},
            "targets": [{"datasource": DATASOURCE, "refId": chr(ord("A") + i), "expr": expr,
                         "legendFormat": legend, "range": True}
                        for i, (expr, legend) in enumerate(targets)],
        })
        self.x += width


def quantile(q, histogram, by, selector=""):
    return (f"histogram_quantile({q}, sum by ({by}, le) "
            f"(rate({histogram}_bucket{selector}{RATE})))")


def model_quantiles(histogram, qs):
    return [(quantile(q, histogram, "model", MODEL), f"p{round(q * 100)} {{{{model}}}}") for q in qs]


def build_panels():
    g = Layout()
    g.row("Jobs")
    g.panel("Jobs by state", [("max by (state) (slq_jobs)", "{{state}}")],
            description="Jobs in the store by state.")
    g.panel("Jobs finished / min",
            [(f"sum by (state) (rate(slq_jobs_finished_total{RATE})) * 60", "{{state}}")])
    g.panel("Job failure ratio (30 min)",
            [('sum(rate(slq_jobs_finished_total{state="FAILED"}[30m])) '
              "/ sum(rate(slq_jobs_finished_total[30m]))", "failed / finished")],
            unit="percentunit")
    g.panel("Stage duration p50",
            [(quantile(0.5, "slq_job_stage_duration_seconds", "stage"), "{{stage}}")], unit="s")
    g.panel("Stage duration p95",
            [(quantile(0.95, "slq_job_stage_duration_seconds", "stage"), "{{stage}}")], unit="s")
    g.panel("Tasks, leases, workers",
            [("max(slq_task_queue_depth)", "queued tasks"),
             ("max(slq_leases_active)", "active leases"),
             ("max(slq_workers_connected)", "workers"),
             (f"sum(increase(slq_leases_expired_total{RATE}))", "expired leases")])
    g.panel("Fetch throughput", [(f"sum(rate(slq_fetch_bytes_total{RATE}))", "fetch")], unit="Bps")

    g.row("Inference latency")
    g.panel("Time to first token", model_quantiles("slq_inference_ttft_seconds", [0.5, 0.95, 0.99]), unit="s")
    g.panel("Inter-token latency", model_quantiles("slq_inference_itl_seconds", [0.5, 0.95, 0.99]), unit="s")
    g.panel("End-to-end latency", model_quantiles("slq_inference_e2e_seconds", [0.5, 0.95]), unit="s")

    g.row("Inference throughput and batching")
    g.panel("Tokens / s",
            [(f"sum by (model) (rate(slq_inference_generated_tokens_total{MODEL}{RATE}))", "generated {{model}}"),
             (f"sum by (model) (rate(slq_inference_prompt_tokens_total{MODEL}{RATE}))", "prompt {{model}}")])
    g.panel("Requests / s by status",
            [(f"sum by (model, status) (rate(slq_inference_requests_total{MODEL}{RATE}))",
              "{{model}} {{status}}")], unit="reqps")
    g.panel("Running / waiting requests",
            [("sum(slq_inference_requests_running)", "running"),
             ("sum(slq_inference_requests_waiting)", "waiting")])
    g.panel("Batch size",
            [(quantile(0.5, "slq_inference_batch_size", "instance"), "p50 {{instance}}"),
             (quantile(0.95, "slq_inference_batch_size", "instance"), "p95 {{instance}}"),
             (f"sum(rate(slq_inference_batch_size_sum{RATE})) / sum(rate(slq_inference_batch_size_count{RATE}))",
              "mean")])
    g.panel("KV cache usage", [("max by (instance) (slq_kv_cache_usage_ratio)", "{{instance}}")],
            field_config={"defaults": {"unit": "percentunit", "min": 0, "max": 1}, "overrides": []})
    g.panel("Model memory", [(f"sum by (model) (slq_model_memory_bytes{MODEL})", "{{model}}")], unit="bytes")

    g.row("Fidelity (shadow evaluation)")
    g.panel("Shadow EAR vs certified EAR",
            [("sum by (artifact) (rate(slq_shadow_ear_sum[1h])) "
              "/ sum by (artifact) (rate(slq_shadow_ear_count[1h]))", "live EAR {{artifact}}"),
             ("max by (artifact) (slq_artifact_certified_ear)", "certified lower bound {{artifact}}")],
            width=12,
            description="Mean EAR (1 - TV distance to the base model) of shadowed requests over 1 h; the dashed "
                        "line is the certificate's lower bound.",
            field_config={"defaults": {"unit": "percentunit", "max": 1}, "overrides": [
                {"matcher": {"id": "byFrameRefID", "options": "B"},
                 "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]}]})
    g.panel("Shadow KL (p50 / p95)",
            [(quantile(0.5, "slq_shadow_kl", "artifact"), "p50 {{artifact}}"),
             (quantile(0.95, "slq_shadow_kl", "artifact"), "p95 {{artifact}}")], unit="none", width=12)
    return g.panels


def build_dashboard():
    model_query = "label_values(slq_inference_requests_total, model)"
    return {
        "uid": "slq-overview", "title": "slq", "tags": ["slq"], "timezone": "utc",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": [{
            "name": "model", "label": "model", "type": "query", "datasource": DATASOURCE,
            "query": {"query": model_query, "refId": "model"}, "definition": model_query,
            "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}]},
        "panels": build_panels(),
    }


def main(argv):
    out = argv[1] if len(argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "dashboards", "slq.json")
    dashboard = build_dashboard()
    with open(out, "w", encoding="utf-8") as f:
        json.dump(dashboard, f, indent=2)
        f.write("\n")
    print(f"{out}: {len(dashboard['panels'])} panels")


if __name__ == "__main__":
    main(sys.argv)
