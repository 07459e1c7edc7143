#!/bin/bash
# tests/net/package.sh: the Debian packages, built, checked, installed and
# run the way their units run them.
#
#  1. dpkg-buildpackage -b -us -uc in a copy of the tree; lintian: no error.
#  2. dpkg -i cfrd, cfr-exporter, cfr-tools: user cfrd exists, no
#     /etc/cfr/cfrd.conf (so the unit's ConditionPathExists keeps cfrd from
#     starting), the example configuration passes cfrd --check-config.
#  3. systemd-analyze verify on the installed units; systemd-analyze security
#     --offline: exposure <= 3.0 for both; promtool check rules on the
#     installed rules; the dashboard parses.
#  4. The lab with the installed binaries: /usr/sbin/cfrd started as its unit
#     starts it (user cfrd, only the unit's AmbientCapabilities, read from the
#     installed unit file, LimitMEMLOCK, NOTIFY_SOCKET and WATCHDOG_USEC),
#     /usr/sbin/cfrctl, and /usr/sbin/cfr-exporter as user cfrd: traffic
#     flows, cfrd holds no capability once set up, the notify socket gets
#     READY=1, STATUS= and WATCHDOG=1 (and STOPPING=1 at down), metrics are
#     served; a log line to the journal's stream carries its priority.
#  5. The packages are purged again if this test installed them.
#
#  cfr-sub1 --ping--> cfr-gw [/usr/sbin/cfrd as user cfrd] --> cfr-fd
#                     cfr-gw: /usr/sbin/cfr-exporter as user cfrd; notify socket <- cfrd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

[ "$(id -u)" = 0 ] || skip "needs root (dpkg -i, network namespaces)"
test_requires dpkg-buildpackage dh lintian systemd-analyze promtool setpriv prlimit
T=$(mktemp -d /tmp/cfr-package.XXXXXX)
INSTALLED_BEFORE=$(dpkg-query -W -f='${Status}\n' cfrd 2>/dev/null | grep -c 'ok installed' || true)
NOTIFY=/run/cfr-package-notify.sock
notify_pid=""
tun_mode=""
# test_lab_up installs its own EXIT trap (_test_cleanup): this test's
# cleanup wraps that function, so it runs whichever trap is in place.
eval "lab_$(declare -f _test_cleanup)"
_test_cleanup() {
	local rc=$?
	set +e
	[ -z "$tun_mode" ] || chmod "$tun_mode" /dev/net/tun
	[ -z "$notify_pid" ] || stop_pid TERM "$notify_pid" 10
	rm -f "$NOTIFY"
	if [ "$INSTALLED_BEFORE" = 0 ]; then
		dpkg --purge cfr-exporter cfrd cfr-tools >"$T/purge.log" 2>&1 || cat "$T/purge.log"
	fi
	rm -rf "$T"
	(exit "$rc")
	lab__test_cleanup
}
trap _test_cleanup EXIT
trap 'exit 1' INT TERM

# --- 1. build and lint -----------------------------------------------------------
mkdir -p "$T/src"
tar -C "$LAB_ROOT" --exclude='./build' --exclude='./build-*' --exclude=./.git -cf - . | tar -C "$T/src" -xf -
start=$(date +%s)
(cd "$T/src" && dpkg-buildpackage -b -us -uc) >"$T/build.log" 2>&1 || { tail -40 "$T/build.log"; fail "dpkg-buildpackage failed"; }
debs=$(find "$T" -maxdepth 1 -name '*.deb' ! -name '*dbgsym*' | wc -l)
ok "dpkg-buildpackage -b -us -uc: $debs packages in $(($(date +%s) - start)) s"
lintian --fail-on error "$T"/*.changes >"$T/lintian.log" 2>&1 || { cat "$T/lintian.log"; fail "lintian reports errors"; }
ok "lintian: no error ($(grep -c '^W:' "$T/lintian.log" || true) warnings)"

# --- 2. install ------------------------------------------------------------------
dpkg -i "$T"/cfrd_*.deb "$T"/cfr-tools_*.deb "$T"/cfr-exporter_*.deb >"$T/install.log" 2>&1 ||
	{ cat "$T/install.log"; fail "dpkg -i failed"; }
id cfrd >/dev/null 2>&1 || fail "the package created no user cfrd"
[ "$(id -u cfrd)" -lt 1000 ] || fail "cfrd is not a system user (uid $(id -u cfrd))"
[ ! -e /etc/cfr/cfrd.conf ] || [ "$INSTALLED_BEFORE" != 0 ] || fail "the package installed /etc/cfr/cfrd.conf: cfrd would start at once"
grep -qx 'ConditionPathExists=/etc/cfr/cfrd.conf' /lib/systemd/system/cfrd.service || fail "cfrd.service does not wait for a configuration"
for b in /usr/sbin/cfrd /usr/sbin/cfrctl /usr/sbin/cfr-exporter /usr/bin/cfr-keygen /usr/bin/cfr-lookup /usr/bin/cfr-audit; do
	[ -x "$b" ] || fail "$b not installed"
	"$b" --version >/dev/null 2>&1 || "$b" --help >/dev/null 2>&1 || fail "$b does not run"
done
/usr/sbin/cfrd --check-config /usr/share/doc/cfrd/examples/cfrd.conf >/dev/null || fail "the packaged example configuration does not pass --check-config"
ok "installed: user cfrd (uid $(id -u cfrd)), six programs, no configuration, the example checks out"
# The BIRD configuration of the gateway role, included as its header says.
cat >"$T/bird.conf" <<EOF
router id 198.51.100.66;
define CFR_SLICE4 = 192.0.2.0/27;
define CFR_SLICE6 = 2001:db8:a1::/65;
define CFR_AS = 65001;
define CFR_CORE4 = 198.51.100.65;
define CFR_CORE6 = 2001:db8:fffd:1::1;
define CFR_CORE_AS = 65000;
define CFR_ACCESS4 = 198.51.100.33;
define CFR_ACCESS6 = 2001:db8:fffe:1::1;
define CFR_ACCESS_AS = 65100;
include "/usr/share/cfrd/bird/cfr-gateway.conf";
EOF
bird -p -c "$T/bird.conf" || fail "the packaged BIRD gateway configuration does not parse"
ok "the packaged BIRD gateway configuration parses with a site's names"

# --- 3. the installed units and rules --------------------------------------------
for u in cfrd cfr-exporter; do
	systemd-analyze verify "/lib/systemd/system/$u.service" >"$T/verify-$u.log" 2>&1 || { cat "$T/verify-$u.log"; fail "systemd-analyze verify $u.service"; }
	[ ! -s "$T/verify-$u.log" ] || { cat "$T/verify-$u.log"; fail "systemd-analyze verify $u.service is not silent"; }
	x=$(systemd-analyze security --offline=true "/lib/systemd/system/$u.service" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
	[ -n "$x" ] || fail "no exposure figure for $u.service"
	awk -v x="$x" 'BEGIN {exit !(x <= 3.0)}' || fail "$u.service exposure $x > 3.0"
	say "$u.service: verify clean, exposure $x"
done
promtool check rules /usr/share/cfr-exporter/cfr-rules.yml >"$T/rules.log" 2>&1 || { cat "$T/rules.log"; fail "promtool check rules"; }
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["panels"]' /usr/share/cfr-exporter/cfr-dashboard.json || fail "dashboard JSON"
ok "units verified, exposure <= 3.0; $(sed -n 's/.*SUCCESS: \([0-9]*\) rules.*/\1/p' "$T/rules.log") rules pass promtool; dashboard parses"

# A line cfrd logs into the journal's stream carries its syslog priority (<3> error).
printf '[cfrd]\nuser = no-such-user-cfr\n[pool]\nipv4 = 192.0.2.0/26\n[subscribers]\nprefix = 100.64.0.0/10\n' >"$T/bad.conf"
exec 8>"$T/journal-stream"
JOURNAL_STREAM="$(stat -c %d "$T/journal-stream"):$(stat -c %i "$T/journal-stream")" /usr/sbin/cfrd -c "$T/bad.conf" 2>&8 && fail "cfrd ran with a missing user"
exec 8>&-
grep -q '^<3>error: user no-such-user-cfr does not exist' "$T/journal-stream" || { cat "$T/journal-stream"; fail "no journal priority on the error line"; }
ok "journal stream: '$(head -c 40 "$T/journal-stream")...'"

# --- 4. the lab, run by the installed binaries as their units run them ------------
caps=$(sed -n 's/^AmbientCapabilities=//p' /lib/systemd/system/cfrd.service | tr '[:upper:]' '[:lower:]' | sed 's/cap_//g')
[ -n "$caps" ] || fail "no AmbientCapabilities in the installed cfrd.service"
capset=$(for c in $caps; do printf '+%s,' "$c"; done | sed 's/,$//')
user=$(sed -n 's/^User=//p' /lib/systemd/system/cfrd.service)
# LimitMEMLOCK=infinity, where this machine lets root raise the limit (a
# container without CAP_SYS_RESOURCE does not; CAP_IPC_LOCK covers cfrd's
# mlockall then).
memlock=""
if prlimit --memlock=unlimited true 2>/dev/null; then memlock="prlimit --memlock=unlimited"; fi
cat >"$T/cfrd-as-unit" <<EOF
#!/bin/sh
# cfrd as cfrd.service starts it: User=$user, AmbientCapabilities=$caps,
# LimitMEMLOCK=infinity, a notify socket and a watchdog. The lab's state
# directory stands in for the unit's RuntimeDirectory (the control socket).
chown $user: $LAB_RUN
exec env NOTIFY_SOCKET=$NOTIFY WATCHDOG_USEC=1000000 $memlock \\
	setpriv --reuid=$user --regid=$user --init-groups --inh-caps=-all,$capset \\
	--ambient-caps=-all,$capset --bounding-set=-all,$capset /usr/sbin/cfrd "\$@"
EOF
cat >"$T/exporter-as-unit" <<EOF
#!/bin/sh
# cfr-exporter as cfr-exporter.service starts it: User=$user, no capability.
exec setpriv --reuid=$user --regid=$user --init-groups --inh-caps=-all --bounding-set=-all \\
	/usr/sbin/cfr-exporter "\$@"
EOF
chmod 755 "$T/cfrd-as-unit" "$T/exporter-as-unit"

# udev's default rule (50-udev-default.rules) makes /dev/net/tun mode 0666;
# the unit relies on it (DeviceAllow= then admits only that node). A
# machine without udev leaves it 0600: stand in for udev while the test runs.
if [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
	tun_mode=$(stat -c %a /dev/net/tun)
	chmod 0666 /dev/net/tun
	say "/dev/net/tun was mode $tun_mode (no udev here): 0666 as udev sets it, until the test ends"
fi

# The notify socket, as systemd's: every datagram into a file.
rm -f "$NOTIFY"
"$PY" - "$NOTIFY" "$T/notify.log" <<'PYEOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "a", buffering=1) as f:
    f.write("listening\n")
    s.settimeout(200)
    while True:
        try:
            m = s.recv(4096)
        except socket.timeout:
            break
        f.write(m.decode(errors="replace").replace("\n", " | ") + "\n")
PYEOF
notify_pid=$!
for _ in $(seq 50); do grep -q listening "$T/notify.log" 2>/dev/null && break; sleep 0.1; done

export CFRD="$T/cfrd-as-unit" CFRCTL=/usr/sbin/cfrctl EXPORTER="$T/exporter-as-unit"
test_lab_up 2
pid=$(cat "$LAB_RUN/cfrd.pid")
uid=$(awk '/^Uid:/ {print $2}' /proc/"$pid"/status)
[ "$uid" = "$(id -u "$user")" ] || fail "cfrd runs as uid $uid, not $user"
grep -q '^CapEff:[[:space:]]*0*$' /proc/"$pid"/status || fail "cfrd keeps capabilities: $(grep Cap /proc/"$pid"/status | tr '\n' ' ')"
nsx sub1 ping -n -c 3 -i 0.2 -W 2 "$SVC4" >/dev/null || fail "ping $SVC4 through the installed cfrd failed"
nsx sub1 ping -6 -n -c 3 -i 0.2 -W 2 "$SVC6" >/dev/null || fail "ping $SVC6 through the installed cfrd failed"
out=$(nsx gw /usr/sbin/cfrctl -s "$LAB_CTL" stats) || fail "the installed cfrctl cannot read the installed cfrd"
echo "$out" | grep -q '^flows' || fail "cfrctl stats: unexpected output"
m=$(nsx gw curl -sf http://127.0.0.1:9848/metrics) || fail "no metrics from the installed exporter"
echo "$m" | grep -q '^cfr_up 1$' || fail "the installed exporter (user $user) cannot read cfrd: $(tail -3 "$LAB_RUN/exporter.log")"
ok "installed cfrd forwards as user $user with no capability left (granted: $caps); cfrctl and the exporter (user $user) read it"
# The unit's capabilities are enough for the in-kernel fast path (a BPF
# program, tcx links): an operator gets the default the lab tests.
grep -q 'fast path on' "$LAB_RUN/cfrd.log" ||
	fail "the fast path is off under the unit's capabilities: $(grep -i 'fast path' "$LAB_RUN/cfrd.log")"
ok "$(grep -o 'fast path on.*' "$LAB_RUN/cfrd.log") under the unit's capabilities"

sleep 6 # a STATUS line every 5 s when the flow count changed
grep -q '^READY=1' "$T/notify.log" || { cat "$T/notify.log"; fail "no READY=1 on the notify socket"; }
grep -q '^STATUS=forwarding: [0-9]* flows' "$T/notify.log" || { cat "$T/notify.log"; fail "no STATUS with flows"; }
w=$(grep -c '^WATCHDOG=1' "$T/notify.log" || true)
[ "$w" -ge 6 ] || { cat "$T/notify.log"; fail "$w WATCHDOG=1 pings in ~8 s, want >= 6 (every 0.5 s)"; }
ok "notify: $(grep -m1 '^READY' "$T/notify.log"); $(grep '^STATUS=forwarding: [0-9]* flows' "$T/notify.log" | tail -1); $w watchdog pings"

capture_stop "$TEST_NAME"
test_leak_check
"$LAB_DIR/cfr-lab" down >/dev/null 2>&1
TEST_LAB_UP=0
grep -q '^STOPPING=1' "$T/notify.log" || fail "no STOPPING=1 when cfrd stopped"
ok "STOPPING=1 on the way out"
echo "PASS $TEST_NAME"
