module connhold

go 1.19
