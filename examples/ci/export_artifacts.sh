#!/usr/bin/env bash
# CI exports of model artifacts from a checkpoint (a model bundle):
#   export every target for every device, check parity, fail on any parity failure,
#   and collect artifacts + manifests into one folder for upload.
#
#   examples/ci/export_artifacts.sh BUNDLE_DIR OUT_DIR
#
# Prints the pipeline's machine-readable summary (deploy pipeline run --ci) to OUT_DIR/summary.json.
set -euo pipefail
bundle=$(cd "$1" && pwd)
out=$(mkdir -p "$2" && cd "$2" && pwd)
deploy=${DEPLOY:-deploy}
work="$out/work"
cat > "$out/pipeline.toml" <<TOML
[pipeline]
work_dir = "$work"

[teacher]
model = "$bundle"
epochs = 0

[export]
targets = ["coreml", "tflite", "onnx"]
devices = ["all"]

[bench]
warmup = 2
iterations = 10
threads = 2
formats = ["onnx", "tflite"]

[plan]
devices = ["iphone6", "iphonex", "iphonexr", "ipadair2", "ipad7", "android"]
TOML
status=0
"$deploy" pipeline run "$out/pipeline.toml" --ci > "$out/summary.json" || status=$?
python3 - "$out" <<'PY'
import json, shutil, sys
from pathlib import Path
out = Path(sys.argv[1])
summary = json.loads((out / "summary.json").read_text())
dest = out / "artifacts"
shutil.rmtree(dest, ignore_errors=True)
dest.mkdir()
for stage in summary["stages"]:
    if stage["kind"] == "export" and stage["status"] in ("ran", "cached"):
        for art in stage["summary"]["artifacts"]:
            shutil.copytree(Path(stage["path"]) / art["artifact"], dest / art["artifact"])
for a in summary["artifacts"]:
    print(f"{a['artifact']:<48} {a['format']:<7} {a['precision']:<5} parity {a['parity']}")
print(f"{len(summary['artifacts'])} artifacts in {dest}; ok={summary['ok']}")
sys.exit(0 if summary["ok"] else 1)
PY
exit $status
