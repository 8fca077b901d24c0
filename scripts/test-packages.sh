#!/usr/bin/env bash
# Tests the packages as a field engineer meets them (issue 13):
#  1. builds both .deb files (scripts/package.sh) and checks what they hold and depend on;
#  2. installs the amd64 one with apt on a clean Debian 12 (debootstrap into
#     target/pkgtest/root, a chroot) and, inside it, with only what the package brought:
#     makes the scheme's keys with rdc, runs rdc-recorder init, check-config and selftest
#     against an emulated camera on loopback;
#  3. runs the arm64 binaries under qemu-user: --help, check-config, selftest against the
#     same camera.
# As root on Debian 12; prints "packages: ok" at the end. Each step says what failed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fail() { echo "packages: FAILED: $*" >&2; exit 1; }

need=()
for p in debootstrap qemu-user-static; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== building the packages"
scripts/package.sh >/dev/null
amd=$(ls target/debian/rdc_*_amd64.deb | tail -1)
arm=$(ls target/debian/rdc_*_arm64.deb | tail -1)
for deb in "$amd" "$arm"; do
  contents=$(dpkg-deb -c "$deb")
  for f in ./usr/bin/rdc-recorder ./usr/bin/rdc ./usr/lib/systemd/system/rdc-recorder.service \
           ./usr/lib/sysusers.d/rdc.conf ./usr/lib/tmpfiles.d/rdc-recorder.conf \
           ./usr/share/doc/rdc/examples/recorder.toml ./usr/lib/systemd/system/rdc-vpn-status.timer \
           ./usr/lib/systemd/system/rdc-vpn-status.service ./usr/lib/systemd/system/rdc-stick@.service \
           ./usr/lib/udev/rules.d/90-rdc-stick.rules ./usr/lib/rdc/rdc-stick-mount \
           ./usr/share/man/man1/rdc.1.gz ./usr/share/man/man1/rdc-fetch.1.gz \
           ./usr/share/man/man1/rdc-recorder.1.gz ./usr/share/man/man1/rdc-recorder-stick.1.gz \
           ./usr/share/bash-completion/completions/rdc ./usr/share/bash-completion/completions/rdc-recorder \
           ./usr/share/zsh/vendor-completions/_rdc ./usr/share/fish/vendor_completions.d/rdc.fish; do
    grep -q " $f\$" <<<"$contents" || fail "$deb does not hold $f"
  done
  dpkg-deb -f "$deb" Depends | grep -q "gstreamer1.0-plugins-good" || fail "$deb: Depends lacks the GStreamer runtime"
done
[ "$(dpkg-deb -f "$amd" Architecture)" = amd64 ] || fail "$amd is not amd64"
[ "$(dpkg-deb -f "$arm" Architecture)" = arm64 ] || fail "$arm is not arm64"
file -L "$(dirname "$arm")/../aarch64-unknown-linux-gnu/release/rdc-recorder" | grep -q "ARM aarch64" \
  || fail "the arm64 recorder is not an aarch64 binary"
echo "   $(basename "$amd"), $(basename "$arm"): binaries, unit, sysusers, tmpfiles, Depends"

# The emulated camera, on the host's loopback (a chroot shares the network).
cargo build --locked -q -p rdc-tests --bin rdc-fake-camera
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/debug/rdc-fake-camera --port "$port" >/tmp/rdc-pkgtest-camera.log 2>&1 &
camera=$!
root=$PWD/target/pkgtest/root
cleanup() {
  kill "$camera" 2>/dev/null || true
  for m in proc dev/pts dev sys; do umount -l "$root/$m" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "== a clean Debian 12 (debootstrap) with the amd64 package installed by apt"
if [ ! -f "$root/.base" ]; then
  rm -rf "$root"; mkdir -p "$root"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/tmp/rdc-debootstrap.log 2>&1 \
    || { tail -20 /tmp/rdc-debootstrap.log; fail "debootstrap"; }
  touch "$root/.base"
fi
# Start from the base each time: what is installed comes from the package alone.
if [ -f "$root/usr/bin/rdc-recorder" ]; then
  chroot "$root" dpkg --purge rdc >/dev/null 2>&1 || true
fi
mount -t proc proc "$root/proc"; mount --bind /dev "$root/dev"; mount --bind /dev/pts "$root/dev/pts"
mount --bind /sys "$root/sys"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$amd" "$root/tmp/rdc.deb"
chroot "$root" env DEBIAN_FRONTEND=noninteractive sh -c \
  'apt-get update -qq && apt-get install -y -qq --no-install-recommends /tmp/rdc.deb' >/tmp/rdc-apt.log 2>&1 \
  || { tail -20 /tmp/rdc-apt.log; fail "apt-get install of the amd64 package"; }
chroot "$root" id rdc >/dev/null || fail "the package did not create the rdc user"
[ "$(chroot "$root" stat -c '%U %a' /var/lib/rdc)" = "rdc 700" ] || fail "/var/lib/rdc is not rdc's, mode 700"
chroot "$root" rdc-recorder --help >/dev/null || fail "rdc-recorder --help"
chroot "$root" rdc --help >/dev/null || fail "rdc --help"

# Inside: the scheme's keys with the packaged rdc, the unit's identity with init, a config.
chroot "$root" sh -ec "
  rm -rf /root/scheme && mkdir -p /root/scheme && cd /root/scheme
  rdc keys ca --scheme 'Package Test' --dir ca >/dev/null
  rdc-recorder init --id pkg-unit --dir /var/lib/rdc >/dev/null 2>&1
  rdc keys sign-unit --ca-dir ca --csr /var/lib/rdc/uplink.csr --dir /etc/rdc >/dev/null
  cp ca/ca.crt /etc/rdc/ca.crt
  rdc keys identity --out officer.key >recipient.txt
  cat >/etc/rdc/recorder.toml <<TOML
[unit]
id = \"pkg-unit\"
operator = \"Package Test Housing\"
contact = \"cctv@northtown-homes.example\"
purpose = \"package test\"
site = \"chroot\"
signing_key = \"/var/lib/rdc/unit-signing-key.p8\"

[storage]
path = \"/var/lib/rdc/store\"
retention_days = 1
max_bytes = \"20 GiB\"

[[camera]]
id = \"front\"
url = \"rtsp://127.0.0.1:$port/cam\"

[[recipient]]
name = \"officer\"
public_key = \"\$(cat recipient.txt)\"

[uplink]
listen = \"127.0.0.1:0\"
cert = \"/etc/rdc/pkg-unit.crt\"
key_file = \"/var/lib/rdc/uplink.key\"
ca = \"/etc/rdc/ca.crt\"
TOML
  rdc-recorder check-config /etc/rdc/recorder.toml >/dev/null
" || fail "keys, init or check-config inside the chroot"
set +e
out=$(chroot "$root" rdc-recorder selftest --seconds 2 2>&1)
set -e
echo "$out" | sed 's/^/   /'
grep -q "^PASS  camera front .*H.264 640x360" <<<"$out" || fail "selftest in the chroot did not see the camera"
grep -q "^PASS  configuration" <<<"$out" || fail "selftest: configuration"
grep -q "^PASS  uplink certificate" <<<"$out" || fail "selftest: the certificate from sign-unit"
grep -q "^PASS  service hardening .*rdc-recorder.service" <<<"$out" || fail "selftest: the installed unit's hardening"
# The stick's service, as a stick sdb1 would start it: systemd takes it as installed.
out=$(chroot "$root" sh -c 'cp /usr/lib/systemd/system/rdc-stick@.service /tmp/rdc-stick@sdb1.service && systemd-analyze verify /tmp/rdc-stick@sdb1.service 2>&1' || true)
[ -z "$out" ] || { echo "$out"; fail "systemd-analyze verify rdc-stick@sdb1.service"; }
chroot "$root" test -x /usr/lib/rdc/rdc-stick-mount || fail "rdc-stick-mount is not executable"
grep -q 'SYSTEMD_WANTS}+="rdc-stick@%k.service"' "$root/usr/lib/udev/rules.d/90-rdc-stick.rules" \
  || fail "the udev rule does not start rdc-stick@.service"
echo "   rdc-stick@.service verifies; the udev rule and the mount helper are installed"

echo "== the arm64 binaries under qemu-user"
sysroot=$PWD/target/sysroot-arm64
qemu=(qemu-aarch64-static -L "$sysroot")
bin=target/aarch64-unknown-linux-gnu/release
"${qemu[@]}" $bin/rdc-recorder --help >/dev/null || fail "arm64 rdc-recorder --help"
"${qemu[@]}" $bin/rdc --help >/dev/null || fail "arm64 rdc --help"
work=$(mktemp -d)
cp -r "$root/root/scheme" "$work/"
sed -e "s|/var/lib/rdc/store|$work/store|; s|/var/lib/rdc/|$root/var/lib/rdc/|g; s|/etc/rdc/|$root/etc/rdc/|g" \
  "$root/etc/rdc/recorder.toml" >"$work/recorder.toml"
"${qemu[@]}" $bin/rdc-recorder check-config "$work/recorder.toml" >/dev/null || fail "arm64 check-config"
set +e
out=$("${qemu[@]}" $bin/rdc-recorder selftest --seconds 2 --config "$work/recorder.toml" 2>&1)
set -e
echo "$out" | sed 's/^/   /'
grep -q "^PASS  camera front .*H.264 640x360" <<<"$out" || fail "arm64 selftest did not see the camera"
rm -rf "$work"
echo "packages: ok"
