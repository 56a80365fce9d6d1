#!/usr/bin/env bash
# One entry point for a fresh machine: builds .venv on first use (and when pyproject.toml changes),
# then runs the mmsearch command line, or the test suite with `./mmsearch.sh test`.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${MMSEARCH_VENV:-.venv}
# torch and torchvision must be a matching pair. The package index's default builds of this pair run
# on CPU and GPU machines alike; set MMSEARCH_TORCH_PACKAGES to choose others (e.g. for an older driver).
TORCH_PACKAGES=${MMSEARCH_TORCH_PACKAGES:-"torch==2.13.0 torchvision==0.28.0"}
EXTRAS=${MMSEARCH_EXTRAS:-server,index,ui,test}

setup() {
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    local py="$VENV/bin/python" stamp="$VENV/.mmsearch-installed" want
    want="$(cat pyproject.toml mmsearch.sh | sha256sum | cut -d' ' -f1) $EXTRAS"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return
    fi
    local log="$VENV/install.log"
    echo "mmsearch: installing into $VENV (first run only; torch is a large download; log: $log)" >&2
    {
        "$py" -m pip install --upgrade pip &&
            if ! "$py" -c "import torch, torchvision" 2>/dev/null; then
                # Skip local wheel folders and extra indexes: they may hold a torch without its torchvision.
                # shellcheck disable=SC2086
                env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$py" -m pip install $TORCH_PACKAGES
            fi &&
            "$py" -m pip install -e ".[$EXTRAS]"
    } >"$log" 2>&1 || {
        tail -n 40 "$log" >&2
        echo "mmsearch: installation failed; full log in $log" >&2
        exit 1
    }
    echo "$want" >"$stamp"
}

case "${1:-}" in
test)
    shift
    setup
    # The suite: everything but GPU tests and the few marked slow (over 20 s each); `-m slow` runs those.
    exec "$VENV/bin/python" -m pytest -m "not gpu and not slow" "$@"
    ;;
*)
    setup
    exec "$VENV/bin/mmsearch" "$@"
    ;;
esac
