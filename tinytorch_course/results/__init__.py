"""What instructors read after grading: the class report and the LMS's import file."""
