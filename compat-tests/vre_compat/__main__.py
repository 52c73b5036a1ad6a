from vre_compat.cli import main

raise SystemExit(main())
