from heimdall.server import main

main()
