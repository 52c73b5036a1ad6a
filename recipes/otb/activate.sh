# OTB finds its applications through OTB_APPLICATION_PATH; pyotb finds OTB through OTB_ROOT. Images set both in
# their ENV as well (kernels and `docker exec` do not run activation scripts).
if [ -n "${OTB_APPLICATION_PATH:-}" ]; then export _CONDA_BACKUP_OTB_APPLICATION_PATH=$OTB_APPLICATION_PATH; fi
if [ -n "${OTB_ROOT:-}" ]; then export _CONDA_BACKUP_OTB_ROOT=$OTB_ROOT; fi
export OTB_APPLICATION_PATH="$CONDA_PREFIX/lib/otb/applications"
export OTB_ROOT="$CONDA_PREFIX"
