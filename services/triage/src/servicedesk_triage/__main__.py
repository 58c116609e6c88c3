from servicedesk_triage.main import main

main()
