# deep-learning layer: TensorBoard at /tensorboard/ through jupyter-server-proxy (installed by postBuild into the
# Python environment's etc/jupyter, the config directory Jupyter reads last).
# `.update` adds this server to those other layers declare (the desktop's QGIS in /usr/local/etc/jupyter, entry
# points of proxy packages): a JSON "servers" mapping here would replace theirs instead.
import os
import sys

c = get_config()  # noqa: F821 (provided by Jupyter's config loader)
c.ServerProxy.servers.update({
    "tensorboard": {
        "command": [os.path.join(sys.prefix, "bin", "vre-tensorboard"), "{port}"],
        "timeout": 60,
        "launcher_entry": {"title": "TensorBoard"},
    },
})
