#!/usr/bin/env bash
# Prepares the Debian prefix that scripts/gpu_check.py builds against on a GPU host without a
# package registry. Run it from the project root on a machine where apt works:
#   scripts/gpu_deps.sh [DIR]          (DIR defaults to .deps; carry it to the GPU host)
# 1. ../shared/gpu/fetch-debs.sh: the dev packages of the build (fmt, CLI11, nlohmann-json, Catch2,
#    HDF5, SentencePiece, Gloo's headers, ...) unpacked under DIR/root;
# 2. what that list leaves out: the zlib and zstd dev packages (the data readers), and every
#    runtime library the carried libraries load (ldd over them: HDF5's libcurl, libsz, ...),
#    except glibc's and GCC's, which every host has. gpu_check.py puts on LD_LIBRARY_PATH only
#    those the host lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.deps}
fetch=../shared/gpu/fetch-debs.sh
[ -f "$fetch" ] || { echo "gpu_deps: $fetch not found (run from the project root beside ../shared)" >&2; exit 1; }
# NOTE: fetch-debs.sh ends by adding DIR to .git/info/exclude, which fails in a git worktree
# (.git is a file there); .gitignore already ignores /.deps/, so only its unpacked files matter.
bash "$fetch" "$dir" || echo "gpu_deps: $fetch reported an error; checking what it unpacked" >&2
[ -f "$dir/root/usr/include/fmt/format.h" ] || { echo "gpu_deps: $dir/root is incomplete" >&2; exit 1; }

pkgs=(zlib1g-dev libzstd-dev)
# The packages of every library the carried ones load, resolved on this machine.
# NOTE: dpkg knows a file by the path its package installed (/lib/... or /usr/lib/..., merged /usr
# or not), so each path ldd prints is asked for as it is and with the other prefix.
owner() {
  dpkg -S "$1" 2>/dev/null || dpkg -S "${1#/usr}" 2>/dev/null || dpkg -S "/usr$1" 2>/dev/null || true
}
mapfile -t closure < <(find "$dir/root" -name 'lib*.so*' -type f -print0 | xargs -0 -r ldd 2>/dev/null |
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u | while read -r lib; do owner "$lib"; done |
  cut -d: -f1 | tr ',' '\n' | sed 's/ //g' | sort -u |
  grep -v -x -E 'libc6|libstdc\+\+6|libgcc-s1|libc-bin' || true)
pkgs+=("${closure[@]}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "${pkgs[@]}" >/dev/null 2>&1) ||
  { echo "gpu_deps: apt-get download ${pkgs[*]} failed (run apt-get update first?)" >&2; exit 1; }
for deb in "$work"/*.deb; do dpkg -x "$deb" "$dir/root"; done
rm -rf "$dir/root/usr/share/doc" "$dir/root/usr/share/man"
find "$dir/root" -name "*.a" -delete
echo "gpu_deps: added ${pkgs[*]}"
du -sh "$dir"
