#!/bin/sh
# PID 1 of a vmtest guest.
#
# Two ways in:
# - from the initramfs (busybox sh): the kernel's 9p/virtio are modules, listed
#   in /vmtest/modules in load order; the agent is /vmtest/agent.cjs;
# - straight from a kernel with 9p built in (init=<this file>, run by the shared
#   root's own /bin/sh): the kernel mounted the host root read-only at /.
#
# Either way it builds the guest's root under $S/newroot according to
# vmtest_mode (overlay | ro | rw), mounts what a test expects, starts the agent
# chrooted into it, reaps orphans while the agent runs, and powers off when the
# agent exits. Settings come from the kernel command line as vmtest_* variables.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

fail() {
  echo "vmtest-init: FAILED: $*" >/dev/console
  poweroff_now
}

# vmtest_debug=1 on the kernel command line (kernelArgs) times each step on the console.
step() {
  [ -n "$vmtest_debug" ] && read -r up _ </proc/uptime && echo "vmtest-init: $up $*" >/dev/console
}

poweroff_now() {
  step "powering off"
  sync
  # sysrq works whatever userspace the root has; busybox's poweroff -f as a fallback.
  echo o >/proc/sysrq-trigger 2>/dev/null || poweroff -f
  sleep 5
  exit 1
}

# 9p options: a large msize for throughput; the root is cached loosely (the
# host root does not change under a test in ways a test relies on), the
# project dir is not (a rebuilt file must be seen at once).
P9="trans=virtio,version=9p2000.L,msize=${vmtest_msize:-512000}"

if [ -d /vmtest ]; then
  S=
  mount -t proc proc /proc || fail "mount /proc"
  mount -t sysfs sys /sys || fail "mount /sys"
  mount -t devtmpfs dev /dev || fail "mount /dev"
  while read -r ko; do
    [ -n "$ko" ] && { insmod "$ko" || fail "insmod $ko"; }
  done </vmtest/modules
  mkdir -p /lower /upper /newroot
  step "modules loaded"
else
  mount -t proc proc /proc 2>/dev/null
  S=/run/vmtest
  mount -t tmpfs -o mode=0755 tmpfs /run || fail "mount tmpfs on /run"
  mkdir -p $S/lower $S/upper $S/newroot
fi

case "${vmtest_mode:-overlay}" in
  overlay)
    mount -t 9p -o "$P9,cache=loose,ro" vmtest-root $S/lower || fail "mount the host root over 9p"
    mount -t tmpfs -o mode=0755 tmpfs $S/upper || fail "mount the overlay's tmpfs"
    mkdir -p $S/upper/data $S/upper/work
    mount -t overlay -o "lowerdir=$S/lower,upperdir=$S/upper/data,workdir=$S/upper/work" overlay $S/newroot ||
      fail "mount the overlay root (is overlayfs available in this kernel?)"
    ;;
  ro) mount -t 9p -o "$P9,cache=loose,ro" vmtest-root $S/newroot || fail "mount the host root over 9p" ;;
  # rw: cache=loose would hold the guest's writes in its page cache, unseen by
  # the host; mmap writes through (and is what vmtest uses).
  rw) mount -t 9p -o "$P9,cache=mmap" vmtest-root $S/newroot || fail "mount the host root over 9p" ;;
  *) fail "unknown vmtest_mode=$vmtest_mode" ;;
esac

R=$S/newroot
step "root mounted"
mount -t proc proc $R/proc || fail "mount /proc in the guest root"
mount -t sysfs sys $R/sys || fail "mount /sys in the guest root"
mount -t devtmpfs dev $R/dev || fail "mount /dev in the guest root"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mount -t tmpfs -o mode=0755 tmpfs $R/run || fail "mount /run"
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || fail "mount /tmp"
[ "$vmtest_mode" = ro ] && mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null

# A 9p mount at a guest path: make the mount point without touching the host
# (in ro/rw modes a missing parent is shadowed by a tmpfs in the guest only).
mount_9p() { # tag guest-path rw|ro
  if [ ! -d "$R$2" ] && ! mkdir -p "$R$2" 2>/dev/null; then
    parent=$(dirname "$2")
    mount -t tmpfs -o mode=0755 tmpfs "$R$parent" && mkdir -p "$R$2" || fail "make mount point $2"
  fi
  mount -t 9p -o "$P9,cache=mmap,$3" "$1" "$R$2" || fail "mount $1 at $2"
}

[ -n "$vmtest_shared" ] && mount_9p vmtest-shared /mnt/vmtest "$vmtest_shared"
# The shared dir at its host path too, where a guest tmpfs (/tmp, /run) hides
# it: commands run from the host's cwd by default, usually that dir.
if [ -n "$vmtest_shared_path" ] && [ ! -d "$R$vmtest_shared_path" ]; then
  mkdir -p "$R$vmtest_shared_path" && mount --bind "$R/mnt/vmtest" "$R$vmtest_shared_path"
fi
# vmtest_mounts=tag:/guest/path:rw;tag:/other:ro
IFS=';'
for m in $vmtest_mounts; do
  IFS=: read -r tag path access <<EOF
$m
EOF
  mount_9p "$tag" "$path" "$access"
done
unset IFS

if [ -d /vmtest ]; then
  mkdir -p $R/run/vmtest
  mount --bind /vmtest $R/run/vmtest || fail "bind the agent into the guest root"
  vmtest_agent=/run/vmtest/agent.cjs
fi

node=${vmtest_node:-/usr/bin/node}
[ -x "$R$node" ] || fail "no node at $node in the guest root (the agent needs it)"
agent=$vmtest_agent
unset vmtest_mode vmtest_node vmtest_shared vmtest_shared_path vmtest_mounts vmtest_agent vmtest_msize
export HOME=/root TERM=linux LANG=C.UTF-8
cd /
step "starting the agent"
chroot $R "$node" "$agent" &
pid=$!
# As PID 1 we inherit every orphan: `wait` reaps them while the agent runs.
# The trap matters: signals without a handler never reach PID 1, so without it
# `wait` would sleep through SIGCHLD for ever.
trap : CHLD
while kill -0 $pid 2>/dev/null; do wait; done
poweroff_now
