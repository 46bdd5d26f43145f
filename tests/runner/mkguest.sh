#!/bin/sh
# tests/runner/mkguest.sh OUTDIR: build pep-run's test guest, cached in
# OUTDIR: vmlinuz (Debian's cloud kernel, downloaded with apt-get and
# unpacked with dpkg-deb -x, never installed) and initrd.img (cpio newc:
# busybox-static, the virtio/vsock modules, guest-client, an /init that
# runs the steps in pep.steps= on the kernel command line and powers off).
# Also in the initramfs: the static pexi-bridge (build/guest/x86_64, else
# compiled here from guest-init/) and chain-client; the steps "bridge"
# (loopback up, pexi-bridge on 127.0.0.1:4040 -> vsock:2:5000 in the
# background) and "chain:ARGS" (chain-client ARGS) use them; "hold:N"
# prints "PEPTEST hold" and sleeps N seconds.
set -eu
out=$1
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
pexi=$top/build/guest/x86_64/pexi-bridge
[ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] &&
    [ "$out/initrd.img" -nt "$here/guest-client.c" ] &&
    [ "$out/initrd.img" -nt "$here/chain-client.c" ] &&
    { [ ! -f "$pexi" ] || [ "$out/initrd.img" -nt "$pexi" ]; } &&
    [ "$out/initrd.img" -nt "$here/mkguest.sh" ] && exit 0
mkdir -p "$out"
tmp=$(mktemp -d /tmp/pep-mkguest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pkg=$(apt-cache depends linux-image-cloud-amd64 |
    sed -n 's/.*Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
[ -n "$pkg" ] || { echo "mkguest: no cloud kernel package" >&2; exit 1; }
(cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) ||
    { echo "mkguest: apt-get download $pkg failed" >&2; exit 1; }
dpkg-deb -x "$tmp"/linux-image-*.deb "$tmp/k"
kdir=$(ls -d "$tmp"/k/lib/modules/*)
root=$tmp/root
mkdir -p "$root/bin" "$root/lib/modules" "$root/proc" "$root/sys" \
    "$root/dev" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for a in sh mount insmod poweroff sleep cat tr echo ls ip; do
	ln -s busybox "$root/bin/$a"
done
for m in drivers/virtio/virtio_ring drivers/virtio/virtio \
    drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci_legacy_dev \
    drivers/virtio/virtio_pci drivers/char/virtio_console \
    net/vmw_vsock/vsock net/vmw_vsock/vmw_vsock_virtio_transport_common \
    net/vmw_vsock/vmw_vsock_virtio_transport; do
	f=$kdir/kernel/$m.ko
	[ -f "$f" ] || f=$(ls "$f".* 2>/dev/null | head -1)
	case $f in
	*.xz) xz -dc "$f" >"$root/lib/modules/$(basename "$m").ko" ;;
	*.zst) zstd -dcq "$f" >"$root/lib/modules/$(basename "$m").ko" ;;
	*) cp "$f" "$root/lib/modules/" ;;
	esac
	echo "$(basename "$m")" >>"$root/lib/modules/order"
done
${CC:-cc} -static -O2 -o "$root/bin/guest-client" "$here/guest-client.c"
${CC:-cc} -static -O2 -o "$root/bin/chain-client" "$here/chain-client.c"
if [ -f "$pexi" ]; then
	cp "$pexi" "$root/bin/pexi-bridge"
else
	${CC:-cc} -std=c17 -O2 -static -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	    -o "$root/bin/pexi-bridge" "$top/guest-init/pexi-bridge.c" \
	    "$top/guest-init/bridge_addr.c" "$top/guest-init/bridge_relay.c" \
	    "$top/common/log.c"
fi
cat >"$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko; done
i=0
while [ ! -e /dev/hvc0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
exec >/dev/hvc0 2>&1
echo "PEPTEST boot"
steps=""
for w in $(cat /proc/cmdline); do
	case $w in pep.steps=*) steps=${w#pep.steps=} ;; esac
done
for s in $(echo "$steps" | tr ',' ' '); do
	case $s in
	bridge)
		ip link set lo up
		/bin/pexi-bridge -q &
		echo "PEPTEST bridge started" ;;
	chain:*)
		/bin/chain-client $(echo "${s#chain:}" | tr ':' ' ') ;;
	hold:*)	# stay up (lifecycle tests stop us from the host)
		echo "PEPTEST hold"
		sleep "${s#hold:}" ;;
	*)
		/bin/guest-client $(echo "$s" | tr ':' ' ') ;;
	esac
done
echo "PEPTEST done"
poweroff -f
INIT
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/initrd.img"
cp "$kdir"/../../../boot/vmlinuz-* "$out/vmlinuz"
mv "$tmp/initrd.img" "$out/initrd.img"
