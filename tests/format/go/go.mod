module gobcheck

go 1.22
