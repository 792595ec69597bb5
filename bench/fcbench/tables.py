"""Markdown output of the report: number formats and the tables of op, Winograd and model results.

Ratios are the other's time / fastconv's time (above 1: fastconv faster).
"""

from __future__ import annotations


def fmt_ms(s, est=False):
    if s is None:
        return "-"
    ms = s * 1e3
    txt = f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"
    return ("~" if est else "") + txt


def fmt_rate(rate, ref, unit):
    if rate is None:
        return "-"
    pct = f" ({100 * rate / ref:.0f}%)" if ref else ""
    return f"{rate:,.1f}{pct}" if unit == "GB/s" else f"{rate:,.0f}{pct}"


def fmt_ratio(other, mine):
    if other is None or mine is None:
        return "-"
    return f"{other / mine:.2f}x" if other / mine < 100 else f"{other / mine:,.0f}x"


def markdown_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def per_s(amount, seconds):
    return None if seconds is None else amount / seconds


def ops_tables(results, peak, bandwidth):
    compute_rows, memory_rows = [], []
    for r in results:
        m = r["median_s"]
        fc, th, npb, nv = m.get("fastconv"), m.get("torch"), m.get("numpy"), r["naive_s"]
        times = [fmt_ms(fc), fmt_ms(th), fmt_ms(npb), fmt_ms(nv, r["naive_estimated"])]
        ratios = [fmt_ratio(th, fc), fmt_ratio(npb, fc), fmt_ratio(nv, fc)]
        if r["kind"] in ("conv", "dense"):
            rates = [fmt_rate(per_s(r["gflop"], t), peak, "GFLOP/s") for t in (fc, th, npb)]
            compute_rows.append([r["layer"], r["op"], f"{r['gflop']:.3f}", *times, *rates, *ratios])
        else:
            rates = [
                fmt_rate(per_s(r["mbytes"] / 1e3, t), bandwidth, "GB/s") for t in (fc, th, npb)
            ]
            layer = f"{r['kind']} {r['layer']}"
            memory_rows.append([layer, r["op"], f"{r['mbytes']:.0f}", *times, *rates, *ratios])
    times_h = ["fastconv ms", "PyTorch ms", "NumPy-best ms", "naive ms"]
    ratio_h = ["fastconv vs PyTorch", "vs NumPy-best", "vs naive"]
    compute = markdown_table(
        ["layer", "op", "GFLOP", *times_h]
        + ["fastconv GFLOP/s (% peak)", "PyTorch GFLOP/s (%)", "NumPy GFLOP/s (%)", *ratio_h],
        compute_rows,
    )
    memory = markdown_table(
        ["layer", "op", "MB moved", *times_h]
        + ["fastconv GB/s (% copy bw)", "PyTorch GB/s (%)", "NumPy GB/s (%)", *ratio_h],
        memory_rows,
    )
    return compute, memory


MODEL_NAMES = {"A": "A: MNIST convnet, batch 64", "B": "B: cats-vs-dogs convnet, batch 32"}


def models_table(results):
    rows = []
    for r in results:
        m, b = r["median_s"], r["batch"]
        ips = {k: b / v for k, v in m.items()}

        def cell(k, ips=ips):
            return f"{ips[k]:,.0f}" if k in ips else "-"

        fc, wino = m.get("fastconv"), m.get("fastconv-winograd")
        rows.append(
            [
                MODEL_NAMES[r["model"]],
                "training step" if r["mode"] == "train" else "inference",
                cell("fastconv"),
                cell("fastconv-winograd"),
                cell("fastconv-ops"),
                cell("torch"),
                cell("keras"),
                fmt_ratio(m.get("torch"), fc),
                fmt_ratio(m.get("torch"), wino),
                fmt_ratio(m.get("keras"), fc),
                fmt_ratio(m.get("fastconv-ops"), fc),
            ]
        )
    header = ["model", "what", "fastconv img/s", "fastconv Winograd (opt-in) img/s"]
    header += ["fastconv ops-level img/s", "PyTorch img/s", "Keras/TF img/s"]
    header += ["fastconv vs PyTorch", "Winograd vs PyTorch", "vs Keras", "vs ops-level"]
    return markdown_table(header, rows)


def winograd_table(results, peak):
    """The opt-in Winograd path next to the default, for the layers it applies to."""
    rows = []
    for r in results:
        m = r["median_s"]
        wino, fc, th = m.get("fastconv-winograd"), m.get("fastconv"), m.get("torch")
        if wino is None:
            continue
        rate = fmt_rate(per_s(r["gflop"], wino), peak, "GFLOP/s")
        rows.append(
            [
                r["layer"],
                r["op"],
                fmt_ms(fc),
                fmt_ms(wino),
                fmt_ratio(fc, wino),
                rate,
                fmt_ratio(th, wino),
            ]
        )
    header = ["layer", "op", "fastconv ms", "Winograd ms", "Winograd vs default"]
    header += ["Winograd direct-equivalent GFLOP/s (% peak)", "Winograd vs PyTorch"]
    return markdown_table(header, rows)
