from servicedesk_sla_timer.main import main

main()
