#!/usr/bin/env bash
# Runs the ProVerif model of the secure channel and checks every verdict.
#
#   verify/run.sh              run everything (a few minutes on one core)
#   verify/run.sh handshake    run only the jobs whose name contains "handshake"
#
# ProVerif is found in $ONWARD_PROVERIF, then beside the project in
# ../shared/tools/proverif/proverif, then /work/shared/tools/proverif/proverif, then
# on PATH.  Without it the script says so and exits 0, unless
# ONWARD_REQUIRE_PROVERIF=1 (as .ci/run sets), when it fails.
#
# Each job names the files it loads and the verdict expected of each query, in
# order: "true" (proven), or "false" (ProVerif found an attack, or for sanity.pv a
# trace that reaches the event, and rebuilt it as a trace).  A job fails when any
# verdict differs, when ProVerif cannot decide a query, reports an error, or runs
# longer than its time limit.  Logs go to $ONWARD_VERIFY_LOGS (default a temporary
# directory) and are kept on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

find_proverif() {
    local candidate
    for candidate in "${ONWARD_PROVERIF:-}" \
        "$here/../../shared/tools/proverif/proverif" \
        /work/shared/tools/proverif/proverif \
        "$(command -v proverif || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! proverif="$(find_proverif)"; then
    if [[ "${ONWARD_REQUIRE_PROVERIF:-0}" == 1 ]]; then
        echo "verify: ProVerif not found and ONWARD_REQUIRE_PROVERIF=1" >&2
        exit 1
    fi
    echo "verify: NOTE: ProVerif not found (set ONWARD_PROVERIF); the model was not checked"
    exit 0
fi

version="$("$proverif" -help 2>&1 | head -n 1 || true)"
case "$version" in
    *"Proverif 2.05"*) ;;
    *) echo "verify: NOTE: expected ProVerif 2.05, found: $version" ;;
esac

logs="${ONWARD_VERIFY_LOGS:-$(mktemp -d)}"
mkdir -p "$logs"
limit="${ONWARD_VERIFY_LIMIT:-600}"  # seconds per job
filter="${1:-}"

# name | the file of part 2 (binding, or a mutant's copy of it) | queries file | verdicts
jobs=(
    "sanity|binding.pvl|sanity.pv|false false false false false false"
    "handshake|binding.pvl|handshake.pv|true true true true true true"
    "channel|binding.pvl|channel.pv|true true true true"
    "hiding|binding.pvl|hiding.pv|true false"
    "mutant-no-hash|mutants/no-hash.pvl|mutants/no-hash.pv|false"
    "mutant-clear-verdict|mutants/clear-verdict.pvl|mutants/clear-verdict.pv|false false"
    "mutant-no-window|mutants/no-window.pvl|mutants/no-window.pv|false false"
    "mutant-no-role|mutants/no-role.pvl|mutants/no-role.pv|true true true"
)

failed=0
ran=0
started=$SECONDS
for job in "${jobs[@]}"; do
    IFS='|' read -r name part2 queries expected <<<"$job"
    [[ -z "$filter" || "$name" == *"$filter"* ]] || continue
    ran=$((ran + 1))
    log="$logs/$name.log"
    t0=$SECONDS
    status=0
    timeout "$limit" "$proverif" -lib onward.pvl -lib "$part2" -lib channel.pvl \
        "$queries" >"$log" 2>&1 || status=$?
    took=$((SECONDS - t0))
    problem=""
    if [[ $status -eq 124 ]]; then
        problem="ran longer than ${limit}s"
    elif [[ $status -ne 0 ]] || grep -q '^Error' "$log"; then
        problem="ProVerif failed (exit $status): $(grep -m1 -A2 '^Error\|rror:' "$log" | tr '\n' ' ')"
    else
        mapfile -t got < <(sed -n 's/^RESULT .* is \(true\|false\)\.$/\1/p; s/^RESULT .* cannot be proved\.$/unknown/p' "$log")
        read -r -a want <<<"$expected"
        if [[ "${got[*]}" != "${want[*]}" ]]; then
            problem="verdicts [${got[*]}], expected [${want[*]}]"
        else
            falses=0
            for verdict in "${want[@]}"; do
                [[ "$verdict" == false ]] && falses=$((falses + 1))
            done
            traces="$(grep -c 'A trace has been found' "$log" || true)"
            if [[ "$traces" -lt "$falses" ]]; then
                problem="$falses verdicts false but only $traces traces rebuilt"
            fi
        fi
    fi
    if [[ -n "$problem" ]]; then
        echo "verify: FAIL $name (${took}s): $problem; log: $log"
        failed=$((failed + 1))
    else
        echo "verify: ok   $name (${took}s): [$expected]"
    fi
done

if [[ $ran -eq 0 ]]; then
    echo "verify: no job matches '$filter'" >&2
    exit 2
fi
echo "verify: $ran jobs, $failed failed, $((SECONDS - started))s; logs in $logs"
if [[ $failed -ne 0 ]]; then
    exit 1
fi
if [[ -z "${ONWARD_VERIFY_LOGS:-}" ]]; then
    rm -rf "$logs"
fi
