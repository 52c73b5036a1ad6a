"""Publishing: push tested images and their tags to a registry."""
