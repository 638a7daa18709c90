#!/usr/bin/env bash
# Set up flamesync on a fresh Debian/Ubuntu machine: system packages, a virtual environment in
# .venv with flamesync and its extras, and (with --dev) the test tools: the Khronos glTF validator
# (npm) and Blender-as-a-module in its own environment .venv-blender (bpy pins numpy<2).
#
#   bash scripts/install.sh         # runtime: everything `flamesync` needs
#   bash scripts/install.sh --dev   # plus what the test suite needs
#
# As root it installs the system packages with apt-get; otherwise it lists the missing ones and the
# command to install them, and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (use --dev)" >&2; exit 2 ;;
  esac
done

# espeak-ng/flite/festival: TTS engines with exact phone timings; libosmesa6/libegl1: headless
# OpenGL for previews; pocketsphinx-testdata: real read speech for evaluation; libportaudio2:
# microphone input for 'flamesync live'.
SYSTEM_PACKAGES=(python3-venv espeak-ng libespeak-ng1 flite festival festvox-kallpc16k festvox-us-slt-hts
                 libosmesa6 libegl1 libgl1 libsndfile1 pocketsphinx-testdata libportaudio2)
# Node.js runs the Khronos glTF validator in the tests; a machine that has node and npm from
# elsewhere (e.g. NodeSource, whose nodejs bundles npm) needs no Debian npm.
if [ "$DEV" = 1 ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
  SYSTEM_PACKAGES+=(nodejs npm)
fi
# The viewer tests drive Debian's chromium headless through Playwright (whose own browser download
# is not used).
if [ "$DEV" = 1 ]; then
  SYSTEM_PACKAGES+=(chromium)
fi

missing=()
for p in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "[install] apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "[install] missing system packages: ${missing[*]}" >&2
    echo "[install] install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[install] creating .venv"
  "$PY" -m venv .venv
fi
extras=all
[ "$DEV" = 1 ] && extras=dev
echo "[install] pip install -e .[$extras]"
# torch==2.13.0 (pinned in pyproject) resolves to the local CPU wheel on these machines.
# The local package mirrors answer "Location ... is ignored" for every package they lack: noise.
.venv/bin/python -m pip install -q -e ".[$extras]" 2> >(grep -v "is ignored: it is neither" >&2)

if [ "$DEV" = 1 ]; then
  if [ -f tools/package.json ]; then
    echo "[install] npm ci (glTF validator)"
    (cd tools && npm ci --silent --no-audit --no-fund)
  fi
  if [ -f tools/requirements-blender.txt ]; then
    if [ ! -x .venv-blender/bin/python ]; then
      echo "[install] creating .venv-blender (Blender as a Python module)"
      # bpy 5.0 wheels exist for CPython 3.11 only.
      BPY_PY=${BLENDER_VENV_PYTHON:-$(command -v python3.11 || echo "$PY")}
      "$BPY_PY" -m venv .venv-blender
    fi
    .venv-blender/bin/python -m pip install -q -r tools/requirements-blender.txt 2> >(grep -v "is ignored: it is neither" >&2)
  fi
fi
echo "[install] done"
