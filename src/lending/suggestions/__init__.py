"""Members' suggestions of things the library should get, their support, and the
coordinators' decisions."""
