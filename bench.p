oms-bench: --target wants HOST:PORT or [IPV6]:PORT, got '127.0.0.1:'
