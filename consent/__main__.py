from consent.cli import main

raise SystemExit(main())
