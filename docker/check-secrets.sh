#!/bin/sh
# Start-up guard for every compose service that reads a docker/*.env file:
#   check-secrets VAR [VAR ...] -- COMMAND [ARG ...]
# A service started with an empty secret, or with the placeholder copied from a
# *.env.example, would run with a password that anyone who reads this repository knows.
# So each VAR that is unset, empty or still a `replace-me...` placeholder stops the
# start: one line on stderr naming it (never its value), exit 1. Otherwise COMMAND
# replaces this script (exec), so it gets the container's signals as PID 1 would.
# Plain POSIX sh: the MinIO images it is mounted into have no bash.
set -eu

me=check-secrets
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    name=$1
    shift
    # The name goes through eval below: only a shell variable name may get there.
    case $name in
        '' | [0-9]* | *[!A-Za-z0-9_]*)
            echo "$me: '$name' is not a variable name" >&2
            exit 2
            ;;
    esac
    eval "value=\${$name-}"
    case $value in
        '')
            echo "$me: $name is empty or unset: set it in its docker/*.env file (see the .env.example beside it)" >&2
            exit 1
            ;;
        # Anywhere in the value and in any case: quotes kept by older compose versions
        # or an edited prefix must not let a placeholder through.
        *[Rr][Ee][Pp][Ll][Aa][Cc][Ee]-[Mm][Ee]*)
            echo "$me: $name is still the .env.example placeholder: set a fresh secret in its docker/*.env file" >&2
            exit 1
            ;;
    esac
done
if [ "$#" -eq 0 ]; then
    echo "$me: usage: check-secrets VAR [VAR ...] -- COMMAND [ARG ...]" >&2
    exit 2
fi
shift # the --
if [ "$#" -eq 0 ]; then
    exit 0
fi
exec "$@"
