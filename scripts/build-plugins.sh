#!/usr/bin/env bash
# Builds every WASM component of the tree (first-party plugins and test
# fixtures) for wasm32-wasip2 and copies them to build/plugins/NAME.wasm.
# Installs the wasm32-wasip2 target first if it is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 target (rustup target add wasm32-wasip2)" >&2
    rustup target add wasm32-wasip2
fi
packages=(
    sluice-plugin-mapper
    sluice-plugin-cleanse
    sluice-plugin-validate
    sluice-fixture-misbehave
    sluice-fixture-other-world
    sluice-bench-interface-guest
)
args=()
for p in "${packages[@]}"; do args+=(-p "$p"); done
cargo build --profile plugin --locked --target wasm32-wasip2 "${args[@]}" >&2
target_dir=${CARGO_TARGET_DIR:-$root/target}
mkdir -p build/plugins
for p in "${packages[@]}"; do
    name=${p#sluice-plugin-}
    name=${name#sluice-}
    src="$target_dir/wasm32-wasip2/plugin/${p//-/_}.wasm"
    cp "$src" "build/plugins/$name.wasm.tmp"
    mv "build/plugins/$name.wasm.tmp" "build/plugins/$name.wasm"
done
echo "plugins in $root/build/plugins: $(cd build/plugins && ls | tr '\n' ' ')" >&2
