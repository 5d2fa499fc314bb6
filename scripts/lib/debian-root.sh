# shellcheck shell=bash
# Throwaway Debian 12 (bookworm) roots for scripts/test-deb and scripts/check-fresh. Sourced, not
# run. Needs root (chroot, mount) and mmdebstrap (scripts/install-deps --package).
#
#   debian_root_tarball NAME VARIANT PACKAGES   prints the path of target/debian-roots/NAME-<hash>.tar,
#                                               made by mmdebstrap from the machine's Debian mirror
#                                               the first time, reused afterwards (same inputs)
#   debian_root_unpack TARBALL DIR              unpacks it into DIR (a fresh, empty directory)
#   debian_root_mount DIR [proc dev sys tmp resolv]   what the commands run inside need
#   debian_root_cleanup                         unmounts everything mounted above, newest first,
#                                               and deletes the roots unpacked above; call it from
#                                               an EXIT trap
#
# The roots live under target/ (the same file system as the checkout, not a tmpfs: a build root
# takes gigabytes). Deleting a root never crosses into a mounted file system: cleanup refuses
# while anything is still mounted below it, and rm runs with --one-file-system.

_debian_root_mounts=()
_debian_root_dirs=()

_debian_root_log() { printf '\033[1m[debian-root]\033[0m %s\n' "$*" >&2; }

# The Debian archive and security mirrors this machine's apt uses (deb822 .sources or one-line
# sources.list), so the roots come from the same place as the machine's packages.
debian_root_mirrors() {
  local uris
  uris=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p'
         cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
           sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p')
  local main security
  main=$(printf '%s\n' $uris | grep -i 'debian' | grep -iv 'security' | head -1 || true)
  security=$(printf '%s\n' $uris | grep -i 'debian-security' | head -1 || true)
  printf '%s %s\n' "${main:-http://deb.debian.org/debian}" "${security:-http://deb.debian.org/debian-security}"
}

debian_root_tarball() {
  local name=$1 variant=$2 packages=$3
  local main security
  read -r main security < <(debian_root_mirrors)
  local dir=target/debian-roots
  mkdir -p "$dir"
  # Same name for the same inputs; a change of package list or mirror makes a new root. Delete
  # target/debian-roots to pick up newer Debian packages.
  local key
  key=$(printf '%s\n' "$variant" "$packages" "$main" "$security" | sha256sum | cut -c1-12)
  local tarball="$dir/$name-$key.tar"
  if [ -s "$tarball" ]; then
    _debian_root_log "reusing $tarball ($(du -h "$tarball" | cut -f1))"
  else
    _debian_root_log "creating a Debian 12 root with mmdebstrap (variant $variant, from $main; plus: $packages)"
    local t0; t0=$(date +%s)
    mmdebstrap --quiet --mode=root --variant="$variant" --format=tar \
      --include="$packages" bookworm "$tarball.part" \
      "deb $main bookworm main" "deb $main bookworm-updates main" "deb $security bookworm-security main"
    mv "$tarball.part" "$tarball"
    _debian_root_log "created $tarball ($(du -h "$tarball" | cut -f1)) in $(( $(date +%s) - t0 )) s"
  fi
  printf '%s\n' "$tarball"
}

debian_root_unpack() {
  local tarball=$1 dir=$2
  mkdir -p "$dir"
  _debian_root_dirs+=("$dir")
  tar -C "$dir" --numeric-owner -xpf "$tarball"
}

_debian_root_mount() {
  local target=$1; shift
  mkdir -p "$target"
  mount "$@" "$target"
  _debian_root_mounts+=("$target")
}

debian_root_mount() {
  local dir=$1; shift
  local what
  for what in "$@"; do
    case "$what" in
      proc) _debian_root_mount "$dir/proc" -t proc proc ;;
      sys) _debian_root_mount "$dir/sys" -t sysfs sysfs ;;
      # The machine's /dev with its /dev/pts and /dev/shm; rslave so that nothing mounted or
      # unmounted below it in the root propagates back to the machine.
      dev) _debian_root_mount "$dir/dev" --rbind /dev; mount --make-rslave "$dir/dev" ;;
      # A private, empty /tmp (not the machine's): big enough for test files and build scratch.
      tmp) _debian_root_mount "$dir/tmp" -t tmpfs tmpfs -o mode=1777,size=50% ;;
      # A copy, not a bind mount: the root only needs to resolve names.
      resolv) rm -f "$dir/etc/resolv.conf"; cp -L /etc/resolv.conf "$dir/etc/resolv.conf" ;;
      *) _debian_root_log "unknown mount $what"; return 2 ;;
    esac
  done
}

debian_root_cleanup() {
  local i
  for (( i=${#_debian_root_mounts[@]}-1; i>=0; i-- )); do
    local m=${_debian_root_mounts[i]}
    umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || _debian_root_log "could not unmount $m"
  done
  _debian_root_mounts=()
  local dir
  for dir in "${_debian_root_dirs[@]}"; do
    [ -d "$dir" ] || continue
    if findmnt -rn -o TARGET | grep -q "^$(realpath "$dir")/"; then
      _debian_root_log "still mounted below $dir: not deleting it"
      continue
    fi
    rm -rf --one-file-system "$dir"
  done
  _debian_root_dirs=()
}
