"""AdminService: register and remove models; jobs run in the admin process."""
