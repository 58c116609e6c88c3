from servicedesk_billing.main import main

main()
