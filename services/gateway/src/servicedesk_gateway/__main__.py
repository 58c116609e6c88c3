from servicedesk_gateway.main import main

main()
