from tma_ops.cli import main

raise SystemExit(main())
