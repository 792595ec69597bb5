"""The report's results against the bars in fcbench.bars: one line per bar this run can decide."""

from __future__ import annotations

from fcbench.bars import BARS


def _case_label(r):
    return f"{r['kind']} {r['layer']} {r['op']}"


def deep_forward(op_results, peak, ceiling, bars=BARS):
    bar = bars["deep_forward"]
    out = []
    for layer in bar["layers"]:
        rs = [x for x in op_results if x["layer"].startswith(layer + " ") and x["op"] == "fwd"]
        if rs and rs[0]["kind"] == "conv" and rs[0]["median_s"].get("fastconv"):
            rate = rs[0]["gflop"] / rs[0]["median_s"]["fastconv"]
            of_ceiling = (
                f", {100 * rate / ceiling:.0f}% of the in-cache tile ceiling" if ceiling else ""
            )
            out.append(
                f"{layer} forward at {100 * rate / peak:.0f}% of peak{of_ceiling} "
                f"(bar: {bar['percent_of_peak']}%)"
            )
    return out


def first_layers(op_results, bars=BARS):
    bar = bars["first_layer_vs_torch"]
    by = {
        (r["layer"].split()[0], r["op"]): r["median_s"] for r in op_results if r["kind"] == "conv"
    }
    out = []
    for layer in bar["layers"]:
        f, w = by.get((layer, "fwd")), by.get((layer, "dw"))
        if f and w and f.get("torch") and w.get("torch"):
            ratio = (f["torch"] + w["torch"]) / (f["fastconv"] + w["fastconv"])
            out.append(
                f"{layer} forward + weight gradient {ratio:.2f}x PyTorch (bar: {bar['ratio']:g}x)"
            )
    return out


def vs_numpy_best(op_results, bars=BARS):
    if not op_results:
        return []
    behind = [
        _case_label(r)
        for r in op_results
        if r["median_s"].get("numpy") is not None
        and r["median_s"]["numpy"] / r["median_s"]["fastconv"] <= bars["vs_numpy_best"]
    ]
    if not behind:
        return ["ahead of NumPy-best on every case"]
    return [f"behind or level with NumPy-best on {len(behind)}: " + "; ".join(behind)]


def vs_naive(op_results, bars=BARS, listed=6):
    bar = bars["vs_naive"]
    naive = sorted(
        (r["naive_s"] / r["median_s"]["fastconv"], _case_label(r))
        for r in op_results
        if r["naive_s"] is not None
    )
    if not naive:
        return []
    slow = [(x, label) for x, label in naive if x < bar]
    if not slow:
        return [f"at least {bar}x naive NumPy on every one of {len(naive)} cases measured"]
    worst = "; ".join(f"{label} ({x:.0f}x)" for x, label in slow[:listed])
    more = f"; and {len(slow) - listed} more" if len(slow) > listed else ""
    return [f"under {bar}x naive NumPy on {len(slow)} of {len(naive)}, lowest: {worst}{more}"]


def models(model_results, bars=BARS):
    out = []
    for r in model_results:
        m = r["median_s"]
        others = {k: v for k, v in m.items() if k in bars["frameworks"]}
        for impl, what in (("fastconv", "default"), ("fastconv-winograd", "Winograd opt-in")):
            fc = m.get(impl)
            if fc and others:
                best_name = min(others, key=others.get)
                ratio = others[best_name] / fc
                bar = bars["models_vs_best_framework"][(r["model"], r["mode"])]
                out.append(
                    f"model {r['model']} {r['mode']} ({what}): {ratio:.2f}x the best framework "
                    f"({best_name}) (bar: {bar}x)"
                )
    return out


def checks(op_results, model_results, peak, ceiling=None, bars=BARS):
    """The bars that this run can decide, as a markdown list."""
    out = deep_forward(op_results, peak, ceiling, bars) + first_layers(op_results, bars)
    out += vs_numpy_best(op_results, bars) + vs_naive(op_results, bars)
    out += models(model_results, bars)
    return "\n".join(f"- {line}" for line in out)
