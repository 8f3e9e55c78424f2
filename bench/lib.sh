# Shell helpers the bench scripts share (sourced, not run).

# Waits until something listens on 127.0.0.1:PORT; exits if nothing does
# within TRIES tenths of a second (default 50).
wait_port() { # port, name, tries
  for _ in $(seq 1 "${3:-50}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$2 did not start" >&2
  exit 1
}

# Percent of the whole machine busy over half a second: what else runs.
machine_busy() {
  local a b
  read -r -a a < /proc/stat
  sleep 0.5
  read -r -a b < /proc/stat
  python3 -c '
import sys
a, b = (list(map(int, x.split())) for x in sys.argv[1:3])
total = sum(b) - sum(a)
idle = (b[3] + b[4]) - (a[3] + a[4])
print(round(100 * (total - idle) / total, 1) if total else 0)' "${a[*]:1}" "${b[*]:1}"
}
