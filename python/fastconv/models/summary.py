"""The table of ``Model.summary()``, drawn as Keras draws it (box characters, or ASCII)."""

from __future__ import annotations

__all__ = ["render_table"]


def render_table(name, rows, total, trainable, line_length=None, ascii=False):
    heads = ("Layer (type)", "Output Shape", "Param #")
    widths = [max(31, *(len(r[0]) for r in rows)) if rows else 31]
    widths.append(max(22, *(len(r[1]) for r in rows)) if rows else 22)
    widths.append(max(13, *(len(r[2]) for r in rows)) if rows else 13)

    def cells(r, sep):
        return (
            sep
            + f" {r[0]:<{widths[0]}} "
            + sep
            + f" {r[1]:<{widths[1]}} "
            + sep
            + f" {r[2]:>{widths[2]}} "
            + sep
        )

    def rule(left, mid, right, fill):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def size(n):
        b = n * 4.0
        for unit in ("B", "KB", "MB", "GB"):
            if b < 1024 or unit == "GB":
                return f"{b:.2f} {unit}"
            b /= 1024

    lines = [f'Model: "{name}"']
    if ascii:
        lines += [rule("+", "+", "+", "-"), cells(heads, "|"), rule("+", "+", "+", "=")]
        for r in rows:
            lines.append(cells(r, "|"))
            lines.append(rule("+", "+", "+", "-"))
    else:
        lines += [rule("┏", "┳", "┓", "━"), cells(heads, "┃"), rule("┡", "╇", "┩", "━")]
        for i, r in enumerate(rows):
            lines.append(cells(r, "│"))
            last = i == len(rows) - 1
            lines.append(rule("└", "┴", "┘", "─") if last else rule("├", "┼", "┤", "─"))
        if not rows:
            lines.append(rule("└", "┴", "┘", "─"))
    lines += [
        f" Total params: {total:,} ({size(total)})",
        f" Trainable params: {trainable:,} ({size(trainable)})",
        f" Non-trainable params: {total - trainable:,} ({size(total - trainable)})",
    ]
    return "\n".join(lines)
