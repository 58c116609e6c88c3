"""intake: takes in ticket requests, owns tickets and their lifecycle."""
