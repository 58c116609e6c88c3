from servicedesk_intake.main import main

main()
