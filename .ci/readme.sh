# shellcheck shell=bash
# readme_command NAME: the shell code block that follows the line `<!-- ci: NAME -->` in README.md, verbatim.
readme_command() {
    local text
    text="$(awk -v tag="<!-- ci: $1 -->" '
        $0 == tag { found = 1; next }
        found && /^```/ { if (inside) exit; inside = 1; next }
        found && inside { print }
    ' README.md)"
    if [ -z "$text" ]; then
        echo "README.md has no code block after <!-- ci: $1 -->" >&2
        return 1
    fi
    printf '%s\n' "$text"
}
