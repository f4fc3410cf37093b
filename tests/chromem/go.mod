module guardian-tests/chromem

go 1.21

require github.com/philippgille/chromem-go v0.7.0
