"""The course's LMS: submissions in from Canvas's archive (`collect`), grades out in Canvas's import file (`canvas`)."""
