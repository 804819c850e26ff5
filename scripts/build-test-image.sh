#!/usr/bin/env bash
# Build the small bootable Debian bookworm (x86_64) disk image that the
# integration tests use for image targets: QEMU boots it through its own
# bootloader (SeaBIOS or OVMF) and the tests talk to qemu-guest-agent inside.
#
#   scripts/build-test-image.sh OUTPUT.raw
#
# Layout (raw, MBR partition table, so SeaBIOS and OVMF both boot it):
#   1: FAT32, type ef, active: syslinux (BIOS) + systemd-boot (UEFI), both
#      loading the same /vmlinuz and /initrd.img with the same command line
#   2: ext4, label vmtest-root: the root filesystem, made by mmdebstrap
# No loop device and no mount: the filesystems are written into plain files
# (mkfs.ext4 -d, mtools) and copied into the disk image.
set -euo pipefail

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
ROOT_LABEL=vmtest-root
# The host reads the kernel log from the serial console, so keep warnings
# (loglevel=5 prints levels 0-4) but not the info chatter. quiet silences the
# initramfs scripts; it must come before loglevel=5, which overrides the
# console level it sets (4, errors only). panic=-1 turns a failed boot, also
# one in the initramfs (which would otherwise wait in a rescue shell), into a
# reboot, which QEMU's -no-reboot turns into an exit (the initramfs gives up
# on a missing root device after 30 s; rootdelay= would sleep that long at
# every boot). The rest is speed under TCG: no speculation workarounds, no
# crypto self-tests at boot, no TSC watchdog (TCG's TSC is steady; the
# watchdog only warns about slow reads).
KERNEL_CMDLINE="root=LABEL=$ROOT_LABEL rw console=ttyS0 quiet loglevel=5 panic=-1 systemd.show_status=false mitigations=off cryptomgr.notests tsc=reliable"
# Free space left in the root filesystem for tests (the image is sparse).
ROOT_FREE_MIB=128

die() { echo "build-test-image: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 OUTPUT.raw"
OUTPUT=$1
[[ ! -d $OUTPUT ]] || die "$OUTPUT is a directory; give the image's file name"
[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap needs it to install packages into a chroot, and mkfs.ext4 -d keeps the owners of the files it copies)"

# Tools, each with the Debian package that provides it.
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
SDBOOT_EFI=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
missing=()
for tool in mmdebstrap:mmdebstrap sfdisk:fdisk mkfs.fat:dosfstools mcopy:mtools mmd:mtools \
            syslinux:syslinux mkfs.ext4:e2fsprogs zstd:zstd; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
[[ -f $MBR_BIN ]] || missing+=(syslinux-common)
[[ -f $SDBOOT_EFI ]] || missing+=(systemd-boot-efi)
if ((${#missing[@]})); then
  die "missing tools; install them with: apt-get install -y $(printf '%s\n' "${missing[@]}" | sort -u | xargs)"
fi

# Work next to OUTPUT so the final rename is atomic (same filesystem).
outdir=$(dirname -- "$OUTPUT")
[[ -d $outdir ]] || die "directory $outdir does not exist"
work=$(mktemp -d "$outdir/.build-test-image.XXXXXX")
# mmdebstrap unmounts what it mounted in $work/root itself, also when it
# fails or is interrupted; --one-file-system keeps rm out of anything left.
trap 'rm -rf --one-file-system -- "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
root=$work/root

# Files that must be in place before the packages are installed, so the
# initramfs is built once and right: initramfs-tools cannot detect the needed
# drivers in a chroot (MODULES=dep), and MODULES=most makes it large and slow
# to unpack, so list what mounting an ext4 root on virtio-blk needs, plus
# virtio_console: with it loaded this early, the guest agent's port exists
# before udev starts and its coldplug event can go first (see below).
stage=$work/stage
mkdir -p "$stage/etc/initramfs-tools/conf.d" "$stage/etc/initramfs-tools/hooks"
cat >"$stage/etc/initramfs-tools/conf.d/vmtest.conf" <<'EOF'
MODULES=list
# No swap to resume from; skips the probe (and its warning in a chroot).
RESUME=none
COMPRESS=gzip
EOF
# A hook rather than /etc/initramfs-tools/modules, which is a conffile.
# It also takes udev back out of the initramfs: starting udevd and replaying
# every device's events there is the slowest part of the initramfs under TCG,
# and it is not needed, since the modules are loaded explicitly, devtmpfs
# creates /dev/vda2, and the scripts resolve LABEL= with blkid. Its prereqs
# make it run after the hooks whose files it removes.
cat >"$stage/etc/initramfs-tools/hooks/vmtest" <<'EOF'
#!/bin/sh
case "$1" in prereqs) echo "udev dmsetup thermal"; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for m in virtio_pci virtio_blk ext4 virtio_console; do
  manual_add_modules "$m"
  echo "$m" >>"$DESTDIR/conf/modules"
done
rm -rf "$DESTDIR/scripts/init-top/udev" "$DESTDIR/scripts/init-bottom/udev" \
  "$DESTDIR/usr/lib/systemd" "$DESTDIR/usr/bin/udevadm" "$DESTDIR/usr/lib/udev" "$DESTDIR/etc/udev" \
  "$DESTDIR"/usr/lib/x86_64-linux-gnu/systemd "$DESTDIR/usr/sbin/dmsetup" "$DESTDIR"/usr/lib/x86_64-linux-gnu/libdevmapper*
EOF
chmod 755 "$stage/etc/initramfs-tools/hooks/vmtest"
# What udev's init-bottom script did besides stopping udevd: hand /dev over
# to the real root.
mkdir -p "$stage/etc/initramfs-tools/scripts/init-bottom"
cat >"$stage/etc/initramfs-tools/scripts/init-bottom/vmtest" <<'EOF'
#!/bin/sh
case "$1" in prereqs) exit 0 ;; esac
mount -n -o move /dev "${rootmnt:?}/dev"
nuke /dev
ln -s "${rootmnt}/dev" /dev
EOF
chmod 755 "$stage/etc/initramfs-tools/scripts/init-bottom/vmtest"
# Pass 0: no fsck, neither in the initramfs (its fsck hook reads this) nor
# at boot; every boot starts from the same clean image.
cat >"$stage/etc/fstab" <<EOF
LABEL=$ROOT_LABEL / ext4 defaults 0 0
EOF

echo "build-test-image: installing Debian $SUITE into $root" >&2
# The merged-usr hook sets up the /usr merge itself, so apt picks the empty
# usr-is-merged package instead of usrmerge, which would pull in perl. dbus
# is for qemu-ga's guest-shutdown (see below).
mmdebstrap --mode=root --variant=minbase --arch=amd64 --format=directory \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --essential-hook="cp -a $(printf %q "$stage")/. \"\$1\"/" \
  --include=systemd-sysv,udev,kmod,qemu-guest-agent,linux-image-amd64,initramfs-tools,mount,util-linux,dbus \
  "$SUITE" "$root" \
  "deb $MIRROR $SUITE main" \
  "deb $MIRROR $SUITE-updates main" \
  "deb $SECURITY_MIRROR $SUITE-security main"

kver=$(basename "$(readlink -f "$root/vmlinuz")" | sed 's/^vmlinuz-//')
[[ -f $root/boot/vmlinuz-$kver && -f $root/boot/initrd.img-$kver ]] || die "no kernel/initramfs found in $root/boot"
echo "build-test-image: kernel $kver" >&2

# The bootloaders load the kernel and initramfs from the FAT partition; the
# root filesystem does not need its own copies.
mkdir -p "$work/esp"
cp "$root/boot/vmlinuz-$kver" "$work/esp/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/esp/initrd.img"
rm -f "$root/boot/vmlinuz-$kver" "$root/boot/initrd.img-$kver" \
  "$root"/vmlinuz* "$root"/initrd.img*

echo vmtest >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tvmtest\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# Every process costs a lot under TCG, so the boot runs only what a test
# guest needs. No logins: the serial console is for the kernel log, and the
# getty generator would otherwise start a getty there (console=ttyS0). No
# periodic maintenance, no device mapper, and nothing that only matters for
# a persistent system (each boot starts from the same image: snapshot=on).
mask() { for unit; do ln -sfn /dev/null "$root/etc/systemd/system/$unit"; done; }
mask getty.target getty@.service serial-getty@.service console-getty.service \
  systemd-update-utmp.service systemd-update-utmp-runlevel.service \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
  fstrim.timer e2scrub_reap.service systemd-pstore.service systemd-hwdb-update.service \
  systemd-random-seed.service systemd-journal-flush.service systemd-remount-fs.service \
  systemd-modules-load.service modprobe@dm_mod.service dev-hugepages.mount \
  systemd-user-sessions.service
# No module preloading for configfs, fuse and loop (and no configfs or
# fusectl mounts that would load them anyway): opening /dev/fuse or
# /dev/loop-control, or mounting configfs, loads them on demand.
mask modprobe@configfs.service modprobe@fuse.service modprobe@loop.service \
  sys-kernel-config.mount sys-fs-fuse-connections.mount
# Without systemd-user-sessions nothing would remove /run/nologin.
mkdir -p "$root/etc/tmpfiles.d"
ln -sfn /dev/null "$root/etc/tmpfiles.d/systemd-nologin.conf"
# qemu-ga's guest-shutdown runs "shutdown -P +0", which systemd 252 hands to
# logind over D-Bus. Neither needs to run before that: without their static
# wants, dbus is socket-activated and logind bus-activated on the first call.
rm -f "$root"/usr/lib/systemd/system/multi-user.target.wants/{systemd-logind,dbus}.service
rm -f "$root"/etc/systemd/system/*.wants/{getty@tty1.service,apt-daily.timer,apt-daily-upgrade.timer,dpkg-db-backup.timer,e2scrub_all.timer,fstrim.timer,e2scrub_reap.service,systemd-pstore.service}
# Generators run at every boot too; keep fstab (the root mount), debug and
# run (systemd.mask=, systemd.run= on the kernel command line, for debugging).
mkdir -p "$root/etc/systemd/system-generators"
for g in cryptsetup getty gpt-auto hibernate-resume integritysetup rc-local system-update sysv veritysetup; do
  ln -sfn /dev/null "$root/etc/systemd/system-generators/systemd-$g-generator"
done
# qemu-guest-agent.service is wanted by the agent's port device through
# udev (60-qemu-guest-agent.rules). Replay that device's event first rather
# than after the few hundred others, so the agent does not wait for the
# whole coldplug.
mkdir -p "$root/etc/systemd/system/systemd-udev-trigger.service.d"
cat >"$root/etc/systemd/system/systemd-udev-trigger.service.d/vmtest.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-udevadm trigger --type=all --action=add --prioritized-subsystem=virtio-ports,module,block,tpmrm,net,tty,input
EOF
# udev rules for hardware and sessions a test guest does not have (an
# /etc/udev/rules.d link to /dev/null disables a rules file of that name).
for r in 55-dm 60-autosuspend 60-drm 60-evdev 60-fido-id 60-infiniband 60-input-id \
  60-persistent-alsa 60-persistent-input 60-persistent-storage-dm 60-persistent-storage-tape \
  60-persistent-v4l 60-sensor 60-serial 70-camera 70-joystick 70-mouse 70-touchpad 70-uaccess \
  71-seat 73-seat-late 75-probe_mtd 78-sound-card 81-net-dhcp 85-hwclock 95-dm-notify 96-e2scrub; do
  ln -sfn /dev/null "$root/etc/udev/rules.d/$r.rules"
done
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$root/etc/systemd/journald.conf.d/vmtest.conf"
# udev loads these for devices of QEMU's q35 machine (its built-in AHCI
# controller, watchdog, SMBus, PC speaker, PS/2 mouse, fw_cfg), for UEFI
# (pstore in EFI variables) and for CPU features (crypto acceleration), and
# systemd loads ip_tables at start; nothing here uses them (the disks are
# virtio) and every module load is slow under TCG. A blacklist only stops
# automatic loading: modprobe still loads them.
printf 'blacklist %s\n' ahci qemu_fw_cfg efi_pstore ip_tables iTCO_wdt iTCO_vendor_support i2c_i801 \
  lpc_ich intel_pmc_bxt pcspkr serio_raw psmouse evdev aesni_intel ghash_clmulni_intel \
  polyval_clmulni sha1_ssse3 sha256_ssse3 sha512_ssse3 crc32_pclmul crct10dif_pclmul \
  >"$root/etc/modprobe.d/vmtest.conf"

# Trim what the guest never reads. udev works without the hardware database
# (it only adds descriptive properties).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/var/log/* "$root"/usr/lib/udev/hwdb.bin "$root"/etc/udev/hwdb.bin "$root"/usr/lib/udev/hwdb.d/* \
  "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale "$root"/usr/share/lintian
find "$root/usr/share/doc" -type f ! -name copyright -delete

# Kernel modules for hardware a QEMU test guest never has. Anything named
# virtio*, the 9p share, overlayfs, ext4 and e1000/e1000e (QEMU's default
# NICs) stay, with everything they depend on, whatever directory it is in.
moddir=$root/usr/lib/modules/$kver
prune=(sound drivers/gpu drivers/media drivers/infiniband drivers/staging drivers/iio
  drivers/isdn drivers/bluetooth drivers/nfc drivers/hwmon drivers/mtd drivers/thunderbolt
  drivers/pcmcia drivers/atm drivers/w1 drivers/edac drivers/crypto drivers/platform/x86
  drivers/net/wireless drivers/net/ethernet drivers/net/usb drivers/net/can drivers/net/wwan
  drivers/net/ieee802154 drivers/net/wan drivers/net/arcnet drivers/net/hamradio drivers/net/fddi
  drivers/usb/gadget drivers/usb/serial drivers/usb/misc drivers/usb/typec drivers/usb/usbip
  drivers/usb/atm drivers/usb/image drivers/input/joystick drivers/input/touchscreen
  drivers/input/tablet net/bluetooth net/wireless net/mac80211 net/mac802154 net/can
  net/ieee802154 net/nfc)
keep_re='^(virtio.*|9p|9pnet_virtio|overlay|ext4|e1000|e1000e)$'
(
  cd "$moddir"
  # modules.dep lists every module with all its (transitive) dependencies.
  awk -F'[: ]+' -v re="$keep_re" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko.*/, "", n)
      if (n ~ re) for (i = 1; i <= NF; i++) if ($i != "") print $i }' modules.dep | sort -u >"$work/keep"
  dirs=()
  for d in "${prune[@]}"; do [[ -d kernel/$d ]] && dirs+=("kernel/$d"); done
  # HBA drivers live in subdirectories of drivers/scsi; sd_mod, sr_mod, sg and
  # virtio_scsi are at its top.
  for d in kernel/drivers/scsi/*/; do dirs+=("${d%/}"); done
  ((${#dirs[@]})) || exit 0
  find "${dirs[@]}" -name '*.ko*' | sort | comm -23 - "$work/keep" | xargs -r rm -f
  # Then whatever depended on a removed module.
  awk -F'[: ]+' '{ for (i = 2; i <= NF; i++) if ($i != "") print $1, $i }' modules.dep |
    while read -r mod dep; do [[ -e $dep ]] || echo "$mod"; done | sort -u | xargs -r rm -f
  find "${dirs[@]}" -depth -type d -empty -delete
)
# Compressed, the modules take a third of the space; kmod decompresses the
# few a test guest loads (zstd is quick to decompress).
find "$moddir/kernel" -name '*.ko' -print0 | xargs -0 -r -n 64 -P "$(nproc)" zstd -q -6 --rm
chroot "$root" depmod -a "$kver"
for m in 9p 9pnet_virtio overlay ext4 virtio_blk virtio_net virtio_console virtio_scsi sd_mod fuse vmw_vsock_virtio_transport; do
  chroot "$root" modprobe -S "$kver" --show-depends "$m" >/dev/null || die "kernel module $m is missing after pruning"
done

# ConditionNeedsUpdate= units (ldconfig, sysusers, catalog and hwdb updates)
# would otherwise run at every boot: mark /etc and /var up to date with /usr
# the way systemd-update-done does.
for d in etc var; do
  printf 'TIMESTAMP_NSEC=%s\n' "$(stat -c %.9Y "$root/usr" | tr -d .)" >"$root/$d/.updated"
  touch -r "$root/usr" "$root/$d/.updated"
done

# Root filesystem: sized to its contents plus some room for the tests (the
# image stays sparse, so free space costs no disk). 4 KiB blocks whatever
# the size (mke2fs would pick 1 KiB ones for a "small" filesystem).
used_mib=$(du -s --block-size=1M "$root" | cut -f1)
inodes=$(find "$root" -xdev | wc -l)
root_mib=$((used_mib * 115 / 100 + ROOT_FREE_MIB))
mkfs.ext4 -q -F -T default -b 4096 -N $((inodes + 16384)) -L "$ROOT_LABEL" -d "$root" \
  "$work/root.img" "${root_mib}M"

# Boot partition. FAT32 needs at least 65525 clusters, so with 512-byte
# clusters it cannot be smaller than about 33 MiB. The hidden-sectors field
# must hold the partition's start for syslinux's boot sector to find
# ldlinux.sys once the filesystem sits inside the disk image.
esp_start=2048 # sectors: partitions start at 1 MiB
files_mib=$(du -s --block-size=1M "$work/esp" | cut -f1)
esp_mib=$((files_mib + 8 > 40 ? files_mib + 8 : 40))
mkfs.fat -F 32 -s 1 -h "$esp_start" -n VMTEST-BOOT -C "$work/esp.img" $((esp_mib * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mcopy -i "$work/esp.img" "$work/esp/vmlinuz" "$work/esp/initrd.img" ::/
mmd -i "$work/esp.img" ::/syslinux ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
# BIOS: SeaBIOS -> mbr.bin -> active partition's boot sector -> syslinux.
cat >"$work/syslinux.cfg" <<EOF
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND $KERNEL_CMDLINE
EOF
mcopy -i "$work/esp.img" "$work/syslinux.cfg" ::/syslinux/syslinux.cfg
syslinux --install --directory /syslinux "$work/esp.img"
# UEFI: OVMF finds EFI/BOOT/BOOTX64.EFI (the removable-media path, so no boot
# entry in NVRAM is needed) on the FAT partition, even under an MBR.
cat >"$work/loader.conf" <<EOF
default debian.conf
timeout 0
editor no
auto-entries no
auto-firmware no
EOF
cat >"$work/debian.conf" <<EOF
title Debian $SUITE (vmtest)
linux /vmlinuz
initrd /initrd.img
options $KERNEL_CMDLINE
EOF
mcopy -i "$work/esp.img" "$SDBOOT_EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$work/esp.img" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$work/esp.img" "$work/debian.conf" ::/loader/entries/debian.conf

# Assemble: MBR partition table, the two filesystems copied in sparsely, and
# syslinux's MBR boot code (first 440 bytes; the table follows it).
root_start=$((esp_start + esp_mib * 2048))
root_sectors=$((root_mib * 2048))
total_sectors=$((root_start + root_sectors))
img=$work/disk.raw
truncate -s $((total_sectors * 512)) "$img"
sfdisk --quiet "$img" <<EOF
label: dos
unit: sectors
start=$esp_start, size=$((esp_mib * 2048)), type=ef, bootable
start=$root_start, size=$root_sectors, type=83
EOF
dd if="$work/esp.img" of="$img" bs=1M seek=$((esp_start / 2048)) conv=notrunc,sparse status=none
dd if="$work/root.img" of="$img" bs=1M seek=$((root_start / 2048)) conv=notrunc,sparse status=none
dd if="$MBR_BIN" of="$img" bs=440 count=1 conv=notrunc status=none

mv -f "$img" "$OUTPUT"
echo "build-test-image: wrote $OUTPUT ($(du -h --apparent-size "$OUTPUT" | cut -f1) apparent, $(du -h "$OUTPUT" | cut -f1) on disk), kernel $kver" >&2
