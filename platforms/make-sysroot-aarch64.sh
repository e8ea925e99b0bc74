#!/usr/bin/env bash
# Builds the aarch64 sysroot that platforms/aarch64-linux-gnu.ini links against: the arm64 builds of
# ember's libraries from Debian 12, unpacked with `dpkg -x` into platforms/sysroot-aarch64/ (gitignored).
#   platforms/make-sysroot-aarch64.sh [--force]
# Quick (a stamp check) when the sysroot is already there. Needs the cross toolchain and qemu-user from
# `tools/install-deps.sh --cross`.
#
# Why not `apt-get install libxnnpack-dev:arm64`: those -dev packages are not Multi-Arch: same, so apt
# would remove the amd64 ones the native build needs. Nothing here is installed: the packages are
# downloaded and unpacked only. libc, libstdc++ and libgcc come from the cross toolchain
# (/usr/aarch64-linux-gnu), which is also qemu-aarch64's -L prefix; the compiler is never given
# --sysroot, only -isystem / -L into this tree (see platforms/aarch64-linux-gnu.ini).
#
# It writes sysroot-aarch64/sysroot.ini, the machine-file layer that tells meson where the sysroot is
# (meson 1.0 machine files cannot name their own directory):
#   meson setup build-aarch64 --cross-file platforms/toolchain-gcc-aarch64.ini \
#     --cross-file platforms/aarch64-linux-gnu.ini --cross-file platforms/sysroot-aarch64/sysroot.ini
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/sysroot-aarch64
deb_arch=arm64
triple=aarch64-linux-gnu

# Runtime libraries and their -dev packages (architecture-specific), and header-only packages
# (Architecture: all). flatbuffers.pc lives in libflatbuffers2; flatc itself runs natively.
arch_pkgs=(libxnnpack0 libxnnpack-dev libpthreadpool0 libpthreadpool-dev libcpuinfo0 libcpuinfo-dev
           libutf8proc2 libutf8proc-dev libflatbuffers2 libflatbuffers-dev)
all_pkgs=(nlohmann-json3-dev doctest-dev)

# The stamp names this script's content and the sysroot's path: editing the package list, or moving
# the checkout (sysroot.ini holds an absolute path), rebuilds it.
stamp_want="$(sha256sum "$0" | cut -c1-16) $root"
if [[ "${1:-}" != "--force" && -f $root/.stamp && "$(cat "$root/.stamp")" == "$stamp_want" ]]; then
  echo "make-sysroot: $root is up to date"
  exit 0
fi

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx "$deb_arch"; then
  echo "make-sysroot: dpkg --add-architecture $deb_arch"
  $SUDO dpkg --add-architecture "$deb_arch"
  need_update=1
fi
apt-cache show "libxnnpack0:$deb_arch" >/dev/null 2>&1 || need_update=1
if [[ $need_update -eq 1 ]]; then
  echo "make-sysroot: apt-get update (for the $deb_arch package lists)"
  $SUDO apt-get update -qq
fi

debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
chmod 755 "$debs"
echo "make-sysroot: downloading ${#arch_pkgs[@]} $deb_arch + ${#all_pkgs[@]} arch-independent packages"
specs=()
for p in "${arch_pkgs[@]}"; do specs+=("$p:$deb_arch"); done
specs+=("${all_pkgs[@]}")
# APT::Sandbox::User=root: the download directory is private, so apt's _apt user could not write it.
(cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root "${specs[@]}")

rm -rf "$root"
mkdir -p "$root"
for d in "$debs"/*.deb; do
  dpkg -x "$d" "$root"
  dpkg-deb --show --showformat='${Package} ${Version} ${Architecture}\n' "$d" >> "$root/packages.txt"
done
rm -rf "$root/usr/share/doc" "$root/usr/share/lintian"

# Absolute symlinks would point into the build machine's own /usr: make them relative to the sysroot.
while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  if [[ $target == /* ]]; then
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$root$target")" "$link"
  fi
done < <(find "$root" -type l -print0)
# Every .so the linker will meet must resolve inside the sysroot.
broken=$(find "$root" -xtype l)
if [[ -n $broken ]]; then
  echo "make-sysroot: broken symlinks in the sysroot:" >&2
  echo "$broken" >&2
  exit 1
fi
# The .pc files say prefix=/usr; meson passes sys_root as PKG_CONFIG_SYSROOT_DIR, so pkg-config
# prefixes their -I / -L paths with the sysroot and they need no rewriting.

# flatc (native) and the arm64 FlatBuffers headers must be the same release: the generated reader
# static_asserts on the version.
flatc_v=$(dpkg-query -W -f='${Version}' flatbuffers-compiler 2>/dev/null || true)
fb_v=$(grep '^libflatbuffers-dev ' "$root/packages.txt" | cut -d' ' -f2)
if [[ -n $flatc_v && $flatc_v != "$fb_v" ]]; then
  echo "make-sysroot: warning: flatc is $flatc_v but the $deb_arch FlatBuffers headers are $fb_v" >&2
fi

cat > "$root/sysroot.ini" <<EOF
# Written by platforms/make-sysroot-aarch64.sh. The machine-file layer that says where the aarch64
# sysroot is; pass it after platforms/aarch64-linux-gnu.ini.
[constants]
sysroot = '$root'
EOF
echo "$stamp_want" > "$root/.stamp"
echo "make-sysroot: $root ready ($(wc -l < "$root/packages.txt") packages, $(du -sh "$root" | cut -f1))"
