#!/bin/sh
# PID 1 of a vmtest guest.
#
# Two ways in:
# - from the initramfs (busybox sh): the kernel's 9p/virtio are modules, listed
#   in /vmtest/modules in load order; the agent is /vmtest/agent.cjs;
# - straight from a kernel with 9p built in (init=<this file>, run by the shared
#   root's own /bin/sh): the kernel mounted the host root read-only at /.
#
# Once per boot it loads the modules and mounts the host's 9p exports under $S.
# Then, once per lease, it runs `$0 lease` in new mount and PID namespaces:
# a fresh root (a new overlay upper in overlay mode), fresh /tmp and /run, and
# the agent chrooted into it. When the agent ends a lease (it leaves
# $S/ctl/renew behind), everything the lease started dies with its PID
# namespace and the next lease takes over; when it ends any other way, the
# guest powers off. The next lease is made ready while the current one serves,
# at the lowest CPU priority (nice 19: it runs on the guest's idle time), and
# waits at a gate: its agent starts serving once init creates $S/ctl/go.N.
# Settings come from the kernel command line as vmtest_* variables.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

fail() {
  echo "vmtest-init: FAILED: $*" >/dev/console
  # A standby only ends itself: the lease in use goes on, and the next one
  # starts from scratch (and fails, with this message, if it must).
  [ -n "$gate" ] && exit 1
  poweroff_now
}

# Each step, with the guest's uptime, on the console: the host shows them as
# boot progress (a few lines; the serial console costs nothing measurable at that rate).
step() {
  read -r up _ </proc/uptime && echo "vmtest-init: $up $*" >/dev/console
}

poweroff_now() {
  step "powering off"
  sync
  # sysrq works whatever userspace the root has; busybox's poweroff -f as a fallback.
  echo o >/proc/sysrq-trigger 2>/dev/null || poweroff -f
  sleep 5
  exit 1
}

# Where the boot-wide mounts live: the initramfs root, or a tmpfs on the
# shared root's /run when there is no initramfs.
if [ -d /vmtest ]; then S=; else S=/run/vmtest; fi

# One lease: runs as PID 1 of fresh mount and PID namespaces. $1: the gate
# file (under $S/ctl) a standby lease's agent waits for, or empty. A standby
# starts once the current agent serves ($S/ctl/serving), so the two never
# compete for the CPU while a lease starts, or once its own gate opens (the
# current lease ended before this loop saw it serve).
lease() {
  gate=$1
  if [ -n "$gate" ]; then
    while [ ! -e $S/ctl/serving ] && [ ! -e "$S/ctl/$gate" ]; do sleep 0.1; done
  fi
  R=$S/lease
  mkdir -p $R
  case "${vmtest_mode:-overlay}" in
    overlay)
      mount -t tmpfs -o mode=0755 tmpfs $S/upper || fail "mount the overlay's tmpfs"
      mkdir -p $S/upper/data $S/upper/work
      mount -t overlay -o "lowerdir=$S/lower,upperdir=$S/upper/data,workdir=$S/upper/work" overlay $R ||
        fail "mount the overlay root (is overlayfs available in this kernel?)"
      ;;
    ro | rw) mount --bind $S/lower $R || fail "bind the root" ;;
  esac
  mount -t proc proc $R/proc || fail "mount /proc in the guest root"
  mount -t sysfs sys $R/sys || fail "mount /sys in the guest root"
  mount -t devtmpfs dev $R/dev || fail "mount /dev in the guest root"
  mkdir -p $R/dev/pts $R/dev/shm
  mount -t devpts -o newinstance,gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
  mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
  ln -sfn /proc/self/fd $R/dev/fd # devtmpfs is one instance for all leases: -n replaces, never nests
  ln -sf /proc/self/fd/0 $R/dev/stdin
  ln -sf /proc/self/fd/1 $R/dev/stdout
  ln -sf /proc/self/fd/2 $R/dev/stderr
  mount -t tmpfs -o mode=0755 tmpfs $R/run || fail "mount /run"
  mount -t tmpfs -o mode=1777 tmpfs $R/tmp || fail "mount /tmp"
  [ "$vmtest_mode" = ro ] && mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp
  mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
  mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
  mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null

  [ -n "$vmtest_shared" ] && bind_at $S/shared /mnt/vmtest
  # The shared dir at its host path too, where a guest tmpfs (/tmp, /run) hides
  # it: commands run from the host's cwd by default, usually that dir.
  if [ -n "$vmtest_shared_path" ] && [ ! -d "$R$vmtest_shared_path" ]; then
    mkdir -p "$R$vmtest_shared_path" && mount --bind $S/shared "$R$vmtest_shared_path"
  fi
  for_each_mount bind_mount

  mkdir -p $R/run/vmtest
  mount --bind $S/ctl $R/run/vmtest || fail "bind the agent's control dir"
  agent=$vmtest_agent
  if [ -d /vmtest ]; then
    mkdir -p $R/run/vmtest-agent
    mount --bind /vmtest $R/run/vmtest-agent || fail "bind the agent into the guest root"
    agent=/run/vmtest-agent/agent.cjs
  fi
  node=${vmtest_node:-/usr/bin/node}
  [ -x "$R$node" ] || fail "no node at $node in the guest root (the agent needs it)"
  unset vmtest_mode vmtest_node vmtest_shared vmtest_shared_path vmtest_mounts vmtest_agent vmtest_msize
  export HOME=/root TERM=linux LANG=C.UTF-8
  cd /
  VMTEST_GATE=${gate:+/run/vmtest/$gate} chroot $R "$node" "$agent" &
  reap_while $!
}

# Starts a lease in new namespaces; $1: a gate file for a standby (which starts
# nice'd; its agent takes the normal priority back once it serves), or empty.
start_lease() {
  if [ -n "$1" ]; then
    # (busybox has renice, not nice)
    sh -c 'renice -n 19 -p $$ >/dev/null 2>&1; exec unshare -m -p -f --propagation private "$0" lease "$1"' "$0" "$1" &
  else
    unshare -m -p -f --propagation private "$0" lease &
  fi
}

# Waits for `pid` while reaping every orphan (as PID 1 we inherit them). The
# trap matters: signals without a handler never reach PID 1, so without it
# `wait` would sleep through SIGCHLD for ever.
reap_while() {
  trap : CHLD
  while kill -0 "$1" 2>/dev/null; do wait; done
}

# A 9p or bound mount at a guest path: make the mount point without touching
# the host (in ro/rw modes a missing parent is shadowed by a tmpfs in the guest only).
mount_point() {
  if [ ! -d "$R$1" ] && ! mkdir -p "$R$1" 2>/dev/null; then
    mount -t tmpfs -o mode=0755 tmpfs "$R$(dirname "$1")" && mkdir -p "$R$1" || fail "make mount point $1"
  fi
}
bind_at() { # source guest-path
  mount_point "$2"
  mount --bind "$1" "$R$2" || fail "bind $2"
}
# vmtest_mounts=tag:/guest/path:rw;tag:/other:ro -> `$1 tag path access` for each.
for_each_mount() {
  IFS=';'
  for m in $vmtest_mounts; do
    IFS=: read -r tag path access <<EOF
$m
EOF
    unset IFS
    "$1" "$tag" "$path" "$access"
    IFS=';'
  done
  unset IFS
}
mount_9p_once() { # tag path access: boot-wide, under $S/mounts
  mkdir -p "$S/mounts/$1"
  mount -t 9p -o "$P9,cache=mmap,$3" "$1" "$S/mounts/$1" || fail "mount $1 for $2"
}
bind_mount() { # tag path access: into the lease
  bind_at "$S/mounts/$1" "$2"
}

[ "$1" = lease ] && { lease "$2"; exit 0; }

# 9p options: a large msize for throughput; the root is cached loosely (the
# host root does not change under a test in ways a test relies on), the
# project dir is not (a rebuilt file must be seen at once).
P9="trans=virtio,version=9p2000.L,msize=${vmtest_msize:-512000}"
export P9 S

if [ -d /vmtest ]; then
  mount -t proc proc /proc || fail "mount /proc"
  mount -t sysfs sys /sys || fail "mount /sys"
  mount -t devtmpfs dev /dev || fail "mount /dev"
  while read -r ko; do
    [ -n "$ko" ] && { insmod "$ko" || fail "insmod $ko"; }
  done </vmtest/modules
  step "modules loaded"
else
  mount -t proc proc /proc 2>/dev/null
  mount -t tmpfs -o mode=0755 tmpfs /run || fail "mount tmpfs on /run"
fi
mkdir -p $S/lower $S/upper $S/shared $S/ctl

case "${vmtest_mode:-overlay}" in
  overlay | ro) mount -t 9p -o "$P9,cache=loose,ro" vmtest-root $S/lower || fail "mount the host root over 9p" ;;
  # rw: cache=loose would hold the guest's writes in its page cache, unseen by
  # the host; mmap writes through (and is what vmtest uses).
  rw) mount -t 9p -o "$P9,cache=mmap" vmtest-root $S/lower || fail "mount the host root over 9p" ;;
  *) fail "unknown vmtest_mode=$vmtest_mode" ;;
esac
[ -n "$vmtest_shared" ] && { mount -t 9p -o "$P9,cache=mmap,$vmtest_shared" vmtest-shared $S/shared || fail "mount the shared dir"; }
for_each_mount mount_9p_once
step "root mounted"

n=0
standby=
while :; do
  rm -f $S/ctl/renew $S/ctl/serving $S/ctl/go.*
  if [ -n "$standby" ] && kill -0 "$standby" 2>/dev/null; then
    active=$standby
    : >$S/ctl/go.$n
  else
    step "starting the agent"
    start_lease
    active=$!
  fi
  n=$((n + 1))
  start_lease go.$n
  standby=$!
  reap_while $active
  [ -e $S/ctl/renew ] || break
done
poweroff_now
