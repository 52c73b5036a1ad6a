# Copy desktop launchers of installed applications to ~/Desktop: HOME is often a volume mounted at start, so the
# image cannot ship them there. Existing files are kept (the user may have edited them).
for launcher in "@PREFIX@"/share/vre/desktop/*.desktop; do
    [ -r "$launcher" ] || continue
    app=$(sed -n 's/^TryExec=//p' "$launcher")
    if [ -n "$app" ] && ! command -v "$app" >/dev/null 2>&1; then continue; fi
    mkdir -p "$HOME/Desktop"
    target="$HOME/Desktop/$(basename "$launcher")"
    if [ ! -e "$target" ]; then install -m 0755 "$launcher" "$target"; fi
done
