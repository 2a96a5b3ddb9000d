"""Rewrite deploy/argocd/README.md's ConfigMap block from the Lua files."""
from pathlib import Path

root = Path("deploy/argocd")
readme = (root / "README.md").read_text()
start = readme.index("```yaml\n", readme.index("## Install"))
end = readme.index("```\n", start + 8) + 4


def indent(text: str, n: int) -> str:
    pad = " " * n
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


block = [
    "```yaml\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n",
    "  labels:\n    app.kubernetes.io/part-of: argocd\ndata:\n",
]
for kind, script in (
    ("ProgressiveService", "health.lua"),
    ("ReleaseTrain", "health-releasetrain.lua"),
    ("FleetRollout", "health-fleetrollout.lua"),
):
    block.append(f"  resource.customizations.health.rollwise.dev_{kind}: |\n")
    block.append(indent((root / script).read_text(), 4))
actions = root / "actions"
for kind in ("ProgressiveService", "ReleaseTrain", "FleetRollout"):
    block.append(f"  resource.customizations.actions.rollwise.dev_{kind}: |\n")
    block.append("    discovery.lua: |\n")
    block.append(indent((actions / "discovery.lua").read_text(), 6))
    block.append("    definitions:\n")
    names = ("promote", "promote-full", "abort", "retry") if kind == "ProgressiveService" else (
        ("promote", "abort", "retry") if kind == "ReleaseTrain" else ("promote", "abort"))
    for name in names:
        block.append(f"    - name: {name}\n      action.lua: |\n")
        block.append(indent((actions / f"{name}.lua").read_text(), 8))
block.append("```\n")
readme = readme[:start] + "".join(block) + readme[end:]
readme = readme.replace(
    "The block above is a copy of `health.lua`; a test fails when they differ.",
    "The block above is a copy of `health.lua`, `health-releasetrain.lua`, "
    "`health-fleetrollout.lua` and `actions/*.lua` (rendered by `python3 "
    "deploy/argocd/render_readme.py`); a test fails when they differ.",
)
(root / "README.md").write_text(readme)
