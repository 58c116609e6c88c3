from servicedesk_notifier.main import main

main()
